"""The Python client of the realtime protocol: ``PushgateClient`` and what its calls raise.

``wire`` is the pure half (message shapes, framing, backoff, dedupe), unit-tested without
sockets; ``connection`` is the I/O half that moves frames over one WebSocket.
"""

from pushgate.client.connection import PushgateClient, Subscription
from pushgate.client.wire import (
    ClientClosedError,
    ClientError,
    ConnectionLostError,
    ProtocolViolationError,
    Publication,
    RpcError,
)
from pushgate.core.protocol import Position

__all__ = [
    "ClientClosedError",
    "ClientError",
    "ConnectionLostError",
    "Position",
    "ProtocolViolationError",
    "Publication",
    "PushgateClient",
    "RpcError",
    "Subscription",
]
