"""Every error pushgate answers, once: its code, HTTP status, JSON-RPC code and close code.

Transports never translate each other's errors: code anywhere raises ``PushgateError`` with an
``ErrorKind``, and each transport reads the column it speaks (``http_status`` for HTTP bodies,
``rpc_code`` for ``WS /ws`` answers, ``close_code`` where the error ends a socket). A kind is one
row, so a new code cannot miss a column and turn into a KeyError and a 500.

``CLOSE_POLICY`` says for every close code whether a client should reconnect; the Python client,
the browser module (checked by a test) and docs/protocol.md follow it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Any


class CloseCode(IntEnum):
    """WebSocket close codes pushgate sends."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002  # sent by the WebSocket layer: a frame breaks RFC 6455
    UNSUPPORTED_DATA = 1003
    INVALID_DATA = 1007  # sent by the WebSocket layer: a text frame is not UTF-8
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_REQUEST = 4400
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    UNKNOWN_JOB = 4404
    SLOW_CONSUMER = 4408
    TOO_MANY_CONNECTIONS = 4429


class Reconnect(Enum):
    """What a client should do after a close code."""

    NO = "no"  # the client itself must change before trying again
    YES = "yes"  # with jittered backoff, resuming from its last position
    WITH_NEW_TOKEN = "with a new token"


@dataclass(frozen=True, slots=True)
class ClosePolicy:
    """What a close code means, and whether a client should reconnect after it."""

    meaning: str
    reconnect: Reconnect


CLOSE_POLICY: dict[CloseCode, ClosePolicy] = {
    CloseCode.NORMAL: ClosePolicy("normal closure", Reconnect.NO),
    CloseCode.GOING_AWAY: ClosePolicy("going away", Reconnect.YES),
    CloseCode.PROTOCOL_ERROR: ClosePolicy("a frame broke the WebSocket protocol", Reconnect.NO),
    CloseCode.UNSUPPORTED_DATA: ClosePolicy("binary frames are not supported", Reconnect.NO),
    CloseCode.INVALID_DATA: ClosePolicy("a text frame was not UTF-8", Reconnect.NO),
    CloseCode.MESSAGE_TOO_BIG: ClosePolicy("a message was too big", Reconnect.NO),
    CloseCode.INTERNAL_ERROR: ClosePolicy("internal error", Reconnect.YES),
    CloseCode.SERVICE_RESTART: ClosePolicy("service restart", Reconnect.YES),
    CloseCode.TRY_AGAIN_LATER: ClosePolicy("try again later", Reconnect.YES),
    CloseCode.BAD_REQUEST: ClosePolicy("bad request", Reconnect.NO),
    CloseCode.UNAUTHORIZED: ClosePolicy("authentication failed", Reconnect.WITH_NEW_TOKEN),
    CloseCode.FORBIDDEN: ClosePolicy("forbidden: this page's origin is not allowed", Reconnect.NO),
    CloseCode.UNKNOWN_JOB: ClosePolicy("unknown job", Reconnect.NO),
    CloseCode.SLOW_CONSUMER: ClosePolicy("slow consumer", Reconnect.YES),
    CloseCode.TOO_MANY_CONNECTIONS: ClosePolicy("too many connections", Reconnect.YES),
}


class RpcCode(IntEnum):
    """JSON-RPC error codes of ``WS /ws`` (docs/protocol.md)."""

    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    UNKNOWN_METHOD = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    UNAUTHORIZED = -32001
    PERMISSION_DENIED = -32003
    UNKNOWN_CHANNEL = -32004
    LIMIT_EXCEEDED = -32005
    CONFLICT = -32009
    UNAVAILABLE = -32013
    RATE_LIMITED = -32029
    # The application's own calls (the ``rpc`` method): codes of their own, so that a client
    # can tell the app's refusals from the protocol's.
    RPC_UNKNOWN_METHOD = -32040
    RPC_ERROR = -32050
    RPC_TIMEOUT = -32054


@dataclass(frozen=True, eq=False)  # eq=False: rows alike in every column stay distinct kinds
class ErrorSpec:
    """One row of the table. ``retry``: the same call may succeed later, unchanged."""

    http_status: int
    rpc_code: RpcCode
    close_code: CloseCode
    retry: bool = False


_R, _C = RpcCode, CloseCode  # short names for the table below


class ErrorKind(ErrorSpec, Enum):
    """Every error code pushgate answers with, and how each transport reports it.

    A member's ``code`` is its name in lower case: the ``error.code`` of HTTP bodies.
    """

    # fmt: off
    # name                    HTTP  JSON-RPC code           close code              retry
    PARSE_ERROR             = (400, _R.PARSE_ERROR,       _C.BAD_REQUEST,          False)
    INVALID_REQUEST         = (400, _R.INVALID_REQUEST,   _C.BAD_REQUEST,          False)
    UNKNOWN_METHOD          = (404, _R.UNKNOWN_METHOD,    _C.BAD_REQUEST,          False)
    INVALID_PARAMS          = (422, _R.INVALID_PARAMS,    _C.BAD_REQUEST,          False)
    BAD_REQUEST             = (400, _R.INVALID_REQUEST,   _C.BAD_REQUEST,          False)
    MALFORMED_JSON          = (400, _R.PARSE_ERROR,       _C.BAD_REQUEST,          False)
    INVALID_BODY            = (422, _R.INVALID_PARAMS,    _C.BAD_REQUEST,          False)
    INVALID_URL             = (422, _R.INVALID_PARAMS,    _C.BAD_REQUEST,          False)
    INVALID_REQUEST_ID      = (422, _R.INVALID_PARAMS,    _C.BAD_REQUEST,          False)
    INVALID_OFFSET          = (422, _R.INVALID_PARAMS,    _C.BAD_REQUEST,          False)
    INVALID_CHANNEL         = (422, _R.INVALID_PARAMS,    _C.BAD_REQUEST,          False)
    INVALID_LAST_EVENT_ID   = (422, _R.INVALID_PARAMS,    _C.BAD_REQUEST,          False)
    INVALID_IDEMPOTENCY_KEY = (422, _R.INVALID_PARAMS,    _C.BAD_REQUEST,          False)
    # JSON text other parsers cannot read the same: NaN, Infinity, numbers beyond a double's
    # range, lone surrogates (see ``wire.parse_json``).
    INVALID_JSON_VALUE      = (422, _R.INVALID_PARAMS,    _C.BAD_REQUEST,          False)
    BODY_TOO_LARGE          = (413, _R.INVALID_REQUEST,   _C.MESSAGE_TOO_BIG,      False)
    UNSUPPORTED_MEDIA_TYPE  = (415, _R.INVALID_REQUEST,   _C.BAD_REQUEST,          False)
    # HTTP only, before the app sees a request (``gateway.request_head``) or while reading a body.
    REQUEST_TIMEOUT         = (408, _R.INVALID_REQUEST,   _C.BAD_REQUEST,          False)
    HEADERS_TOO_LARGE       = (431, _R.INVALID_REQUEST,   _C.BAD_REQUEST,          False)
    UNAUTHORIZED            = (401, _R.UNAUTHORIZED,      _C.UNAUTHORIZED,         False)
    PERMISSION_DENIED       = (403, _R.PERMISSION_DENIED, _C.UNAUTHORIZED,         False)
    FORBIDDEN               = (403, _R.PERMISSION_DENIED, _C.FORBIDDEN,            False)
    UNKNOWN_CHANNEL         = (404, _R.UNKNOWN_CHANNEL,   _C.UNKNOWN_JOB,          False)
    UNKNOWN_JOB             = (404, _R.UNKNOWN_CHANNEL,   _C.UNKNOWN_JOB,          False)
    NOT_FOUND               = (404, _R.UNKNOWN_METHOD,    _C.BAD_REQUEST,          False)
    METHOD_NOT_ALLOWED      = (405, _R.UNKNOWN_METHOD,    _C.BAD_REQUEST,          False)
    LIMIT_EXCEEDED          = (422, _R.LIMIT_EXCEEDED,    _C.BAD_REQUEST,          False)
    CONFLICT                = (409, _R.CONFLICT,          _C.BAD_REQUEST,          False)
    RATE_LIMITED            = (429, _R.RATE_LIMITED,      _C.TOO_MANY_CONNECTIONS, True)
    UNAVAILABLE             = (503, _R.UNAVAILABLE,       _C.TRY_AGAIN_LATER,      True)
    INTERNAL_ERROR          = (500, _R.INTERNAL_ERROR,    _C.INTERNAL_ERROR,       True)
    # Only ``rpc`` answers these (never HTTP, never a close). A timed-out call may have run:
    # not retried by itself.
    RPC_UNKNOWN_METHOD      = (404, _R.RPC_UNKNOWN_METHOD, _C.BAD_REQUEST,         False)
    RPC_ERROR               = (500, _R.RPC_ERROR,         _C.INTERNAL_ERROR,       False)
    RPC_TIMEOUT             = (504, _R.RPC_TIMEOUT,       _C.INTERNAL_ERROR,       False)
    # fmt: on

    @property
    def code(self) -> str:
        return self.name.lower()


# Kinds only ``WS /ws`` answers with (docs/protocol.md lists them); every other kind may come
# over HTTP too (README's table, OpenAPI's error codes).
JSON_RPC_ONLY = frozenset(
    {
        ErrorKind.PARSE_ERROR, ErrorKind.INVALID_REQUEST, ErrorKind.UNKNOWN_METHOD,
        ErrorKind.INVALID_PARAMS, ErrorKind.LIMIT_EXCEEDED, ErrorKind.INVALID_OFFSET,
        ErrorKind.RPC_UNKNOWN_METHOD, ErrorKind.RPC_ERROR, ErrorKind.RPC_TIMEOUT,
    }
)  # fmt: skip

# A client sees only the JSON-RPC code, so retrying is decided per code (a test checks that no
# two kinds sharing a code disagree).
RETRYABLE_RPC_CODES = frozenset(kind.rpc_code for kind in ErrorKind if kind.retry)


class PushgateError(Exception):
    """A refusal any transport can report the way its protocol says (see ``ErrorKind``).

    ``data`` travels as the JSON-RPC error's ``data``; ``closes`` ends the socket it happened on
    with the kind's close code, right after the answer (over HTTP: the connection).
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        data: dict[str, Any] | None = None,
        *,
        closes: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.data = data
        self.closes = closes

    @property
    def code(self) -> str:
        return self.kind.code


class RateLimitedError(PushgateError):
    """A budget is spent; ``retry_after`` whole seconds from now it holds a token again.

    HTTP sends it as ``Retry-After``, JSON-RPC as ``data.retry_after``, sockets in the reason.
    """

    def __init__(self, what: str, retry_after: int) -> None:
        message = f"too many {what}; retry in {retry_after} s"
        super().__init__(ErrorKind.RATE_LIMITED, message, {"retry_after": retry_after})
        self.retry_after = retry_after
