"""Writing pre-framed messages straight to a client's socket, skipping the per-message layers.

A publication goes to thousands of sockets as the same bytes (server frames are not masked), so
the gateway frames it once and hands those bytes to each connection's transport. That is only
valid for uvicorn's sans-I/O WebSocket protocol with no extension negotiated (permessage-deflate
compresses per connection); anything else takes the ordinary ASGI path. The frame goes out only
when the connection is open and writable, so ordering and backpressure stay the protocol's.
"""

from __future__ import annotations

from starlette.types import Send
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class DirectSink:
    __slots__ = ("_protocol",)

    def __init__(self, protocol: WebSocketsSansIOProtocol) -> None:
        self._protocol = protocol

    @classmethod
    def of(cls, send: Send) -> DirectSink | None:
        """The sink behind uvicorn's ``send`` of an accepted socket, if writing to it is safe."""
        protocol = getattr(send, "__self__", None)
        if not isinstance(protocol, WebSocketsSansIOProtocol) or protocol.conn.extensions:
            return None
        return cls(protocol)

    def write(self, frame: bytes) -> bool:
        """Write ``frame`` now if the socket can take it; False means queue it instead."""
        protocol = self._protocol
        if protocol.close_sent or protocol.disconnected or not protocol.writable.is_set():
            return False
        protocol.transport.write(frame)
        return True
