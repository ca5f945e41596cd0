"""Writing pre-framed messages straight to a client's socket, skipping the per-message layers.

A publication goes to thousands of sockets as the same bytes (server frames are not masked), so
the gateway frames it once and hands those bytes to each connection's transport. That is only
valid for uvicorn's sans-I/O WebSocket protocol with no extension negotiated (permessage-deflate
compresses per connection); anything else takes the ordinary ASGI path. A frame goes out only
while the connection is open and writable, so ordering and backpressure stay the protocol's.

While the hub hands out one batch of publications, writes are corked: each socket then gets all
of its frames from that batch in one write, one system call instead of one per publication.
"""

from __future__ import annotations

import logging
from types import TracebackType

from starlette.types import Send
from uvicorn.protocols.websockets import auto
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

log = logging.getLogger(__name__)


class Cork:
    """Collects direct writes while corked; uncorking flushes each socket's frames at once.

    Only ever corked around synchronous code (no await inside), so no other task's writes
    (answers to calls, say) can be held back by it.
    """

    __slots__ = ("corked", "dirty")

    def __init__(self) -> None:
        self.corked = False
        self.dirty: list[DirectSink] = []

    def __enter__(self) -> Cork:
        self.corked = True
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.corked = False
        dirty, self.dirty = self.dirty, []
        for sink in dirty:
            sink.flush()


class DirectSink:
    """Writes pre-framed messages to one socket's transport, only while it is open and writable."""

    __slots__ = ("_cork", "_pending", "_protocol")

    def __init__(self, protocol: WebSocketsSansIOProtocol, cork: Cork) -> None:
        self._protocol = protocol
        self._cork = cork
        self._pending: list[bytes] = []

    def write(self, frame: bytes) -> bool:
        """Write ``frame`` now (or with the cork) if the socket can take it; False: queue it."""
        protocol = self._protocol
        if protocol.close_sent or protocol.disconnected or not protocol.writable.is_set():
            return False
        if not self._cork.corked:
            protocol.transport.write(frame)
            return True
        if not self._pending:
            self._cork.dirty.append(self)
        self._pending.append(frame)
        return True

    def flush(self) -> None:
        """Write what the cork held; promised to the caller already, so even past the buffer's
        high-water mark (later frames then queue, as the socket is no longer writable)."""
        pending, self._pending = self._pending, []
        protocol = self._protocol
        if not (protocol.close_sent or protocol.disconnected):
            protocol.transport.write(pending[0] if len(pending) == 1 else b"".join(pending))


class DirectWrites:
    """Hands out direct sinks for sockets where writing frames straight is safe, and says once
    per process when it is not (the gateway then works, through the slower ASGI path)."""

    __slots__ = ("_warned", "cork")

    def __init__(self) -> None:
        self.cork = Cork()
        self._warned = False

    def sink_for(self, send: Send) -> DirectSink | None:
        """The sink behind uvicorn's ``send`` of an accepted socket, if writing to it is safe."""
        protocol = getattr(send, "__self__", None)
        if isinstance(protocol, WebSocketsSansIOProtocol) and not protocol.conn.extensions:
            return DirectSink(protocol, self.cork)
        if not self._warned:
            self._warned = True
            log.warning("direct-write fast path is off: %s", _why_not_direct(protocol))
        return None


def _why_not_direct(protocol: object) -> str:
    if isinstance(protocol, WebSocketsSansIOProtocol):
        return (
            "permessage-deflate was negotiated (start uvicorn with --ws-per-message-deflate false)"
        )
    name = type(protocol).__name__
    return f"uvicorn runs {name}, not websockets-sansio (start it with --ws auto)"


def check_fast_path_available() -> None:
    """At start-up: warn when uvicorn's ``--ws auto`` would not pick the sans-I/O protocol."""
    if auto.AutoWebSocketsProtocol is not WebSocketsSansIOProtocol:
        log.warning(
            "direct-write fast path is off: uvicorn's --ws auto does not pick websockets-sansio"
        )
