"""Writing pre-framed messages straight to a client's socket, skipping the per-message layers.

A publication goes to thousands of sockets as the same bytes (server frames are not masked), so
the gateway frames it once and hands those bytes to each connection's transport. That is only
valid for uvicorn's sans-I/O WebSocket protocol, or pushgate's lean one (``gateway/wsprotocol.py``),
with no extension negotiated (permessage-deflate compresses per connection); anything else takes
the ordinary ASGI path. A frame goes out only
while the connection is open and writable, so ordering and backpressure stay the protocol's.

While the hub hands out one batch of publications, writes are corked: each socket then gets all
of its frames from that batch in one write, one system call instead of one per publication.

The same protocol object lets the outbox close a socket whose client stopped reading without
waiting for it (``Transport.close_now``), which uvicorn's own close cannot: it waits until the
socket is writable again.
"""

from __future__ import annotations

import logging
from types import TracebackType

from starlette.types import Scope, Send
from uvicorn.protocols.websockets import auto
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from gateway.wsprotocol import LeanWebSocketProtocol

log = logging.getLogger(__name__)

# The protocols whose internals this module writes to: uvicorn's sans-I/O one, and ours, which
# keeps the same attribute names for it (``pushgate gateway``'s default).
SansIOProtocol = WebSocketsSansIOProtocol | LeanWebSocketProtocol


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


# Where the app keeps uvicorn's own ``send`` in a WebSocket's scope, for endpoints that Starlette
# hands a wrapped one (``gateway.app``).
SERVER_SEND = "pushgate.server_send"


class Transport:
    """uvicorn's sans-I/O connection behind an ASGI ``send``: what may be done to it at once."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: SansIOProtocol) -> None:
        self._protocol = protocol

    @classmethod
    def of(cls, send: Send | None) -> Transport | None:
        protocol = getattr(send, "__self__", None)
        return cls(protocol) if isinstance(protocol, SansIOProtocol) else None

    @classmethod
    def of_scope(cls, scope: Scope) -> Transport | None:
        return cls.of(scope.get(SERVER_SEND))

    def sink(self, cork: Cork) -> DirectSink | None:
        """Direct writes, where safe: no extension negotiated (deflate compresses per socket)."""
        return None if self._protocol.conn.extensions else DirectSink(self._protocol, cork)

    def close_now(self, code: int, reason: str) -> None:
        """Queue the close frame behind whatever the socket still holds, without waiting for the
        client to read: it gets every frame written so far, then the close. The app's
        ``receive`` ends at once, as after uvicorn's own close; the connection is aborted if
        the client has not answered the close within uvicorn's close timeout."""
        protocol = self._protocol
        if protocol.close_sent or protocol.disconnected or protocol.transport.is_closing():
            return
        protocol.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        protocol.conn.send_close(code, reason)
        protocol.transport.write(b"".join(protocol.conn.data_to_send()))
        protocol.close_sent = True
        if protocol.read_paused:  # read on, to see the client's answer to the close
            protocol.read_paused = False
            protocol.transport.resume_reading()
        timeout = protocol.close_timeout
        protocol.close_timer = protocol.loop.call_later(timeout, protocol.transport.abort)


class DirectSink:
    """Writes pre-framed messages to one socket's transport, only while it is open and writable."""

    __slots__ = ("_cork", "_pending", "_protocol")

    def __init__(self, protocol: SansIOProtocol, cork: Cork) -> None:
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

    def sink_for(self, transport: Transport | None) -> DirectSink | None:
        """The sink of an accepted socket's transport, if writing to it is safe."""
        sink = transport.sink(self.cork) if transport is not None else None
        if sink is None and not self._warned:
            self._warned = True
            log.warning("direct-write fast path is off: %s", _why_not_direct(transport))
        return sink


def _why_not_direct(transport: Transport | None) -> str:
    if transport is not None:
        return "permessage-deflate was negotiated (run uvicorn with --ws-per-message-deflate false)"
    return "uvicorn's WebSocket protocol is not websockets-sansio (start it with --ws auto)"


def check_fast_path_available() -> None:
    """At start-up: warn when uvicorn's ``--ws auto`` would not pick the sans-I/O protocol."""
    if auto.AutoWebSocketsProtocol is not WebSocketsSansIOProtocol:
        log.warning(
            "direct-write fast path is off: uvicorn's --ws auto does not pick websockets-sansio"
        )
