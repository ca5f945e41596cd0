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


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """One row of the table. ``retry``: the same call may succeed later, unchanged."""

    code: str
    http_status: int
    rpc_code: RpcCode
    close_code: CloseCode
    retry: bool = False


_BAD = CloseCode.BAD_REQUEST


class ErrorKind(Enum):
    """Every error code pushgate answers with, and how each transport reports it."""

    PARSE_ERROR = ErrorSpec("parse_error", 400, RpcCode.PARSE_ERROR, _BAD)
    INVALID_REQUEST = ErrorSpec("invalid_request", 400, RpcCode.INVALID_REQUEST, _BAD)
    UNKNOWN_METHOD = ErrorSpec("unknown_method", 404, RpcCode.UNKNOWN_METHOD, _BAD)
    INVALID_PARAMS = ErrorSpec("invalid_params", 422, RpcCode.INVALID_PARAMS, _BAD)
    BAD_REQUEST = ErrorSpec("bad_request", 400, RpcCode.INVALID_REQUEST, _BAD)
    MALFORMED_JSON = ErrorSpec("malformed_json", 400, RpcCode.PARSE_ERROR, _BAD)
    # JSON text other parsers cannot read the same: NaN, Infinity, numbers beyond a double's
    # range, lone surrogates (see ``wire.parse_json``).
    INVALID_JSON_VALUE = ErrorSpec("invalid_json_value", 422, RpcCode.INVALID_PARAMS, _BAD)
    INVALID_BODY = ErrorSpec("invalid_body", 422, RpcCode.INVALID_PARAMS, _BAD)
    INVALID_URL = ErrorSpec("invalid_url", 422, RpcCode.INVALID_PARAMS, _BAD)
    INVALID_REQUEST_ID = ErrorSpec("invalid_request_id", 422, RpcCode.INVALID_PARAMS, _BAD)
    INVALID_OFFSET = ErrorSpec("invalid_offset", 422, RpcCode.INVALID_PARAMS, _BAD)
    INVALID_CHANNEL = ErrorSpec("invalid_channel", 422, RpcCode.INVALID_PARAMS, _BAD)
    INVALID_LAST_EVENT_ID = ErrorSpec("invalid_last_event_id", 422, RpcCode.INVALID_PARAMS, _BAD)
    INVALID_IDEMPOTENCY_KEY = ErrorSpec(
        "invalid_idempotency_key", 422, RpcCode.INVALID_PARAMS, _BAD
    )
    BODY_TOO_LARGE = ErrorSpec(
        "body_too_large", 413, RpcCode.INVALID_REQUEST, CloseCode.MESSAGE_TOO_BIG
    )
    UNSUPPORTED_MEDIA_TYPE = ErrorSpec("unsupported_media_type", 415, RpcCode.INVALID_REQUEST, _BAD)
    # HTTP only, before the app sees a request (``gateway.request_head``) or while reading a body.
    REQUEST_TIMEOUT = ErrorSpec("request_timeout", 408, RpcCode.INVALID_REQUEST, _BAD)
    HEADERS_TOO_LARGE = ErrorSpec("headers_too_large", 431, RpcCode.INVALID_REQUEST, _BAD)
    UNAUTHORIZED = ErrorSpec("unauthorized", 401, RpcCode.UNAUTHORIZED, CloseCode.UNAUTHORIZED)
    PERMISSION_DENIED = ErrorSpec(
        "permission_denied", 403, RpcCode.PERMISSION_DENIED, CloseCode.UNAUTHORIZED
    )
    FORBIDDEN = ErrorSpec("forbidden", 403, RpcCode.PERMISSION_DENIED, CloseCode.FORBIDDEN)
    UNKNOWN_CHANNEL = ErrorSpec(
        "unknown_channel", 404, RpcCode.UNKNOWN_CHANNEL, CloseCode.UNKNOWN_JOB
    )
    UNKNOWN_JOB = ErrorSpec("unknown_job", 404, RpcCode.UNKNOWN_CHANNEL, CloseCode.UNKNOWN_JOB)
    NOT_FOUND = ErrorSpec("not_found", 404, RpcCode.UNKNOWN_METHOD, _BAD)
    METHOD_NOT_ALLOWED = ErrorSpec("method_not_allowed", 405, RpcCode.UNKNOWN_METHOD, _BAD)
    LIMIT_EXCEEDED = ErrorSpec("limit_exceeded", 422, RpcCode.LIMIT_EXCEEDED, _BAD)
    CONFLICT = ErrorSpec("conflict", 409, RpcCode.CONFLICT, _BAD)
    RATE_LIMITED = ErrorSpec(
        "rate_limited", 429, RpcCode.RATE_LIMITED, CloseCode.TOO_MANY_CONNECTIONS, retry=True
    )
    UNAVAILABLE = ErrorSpec(
        "unavailable", 503, RpcCode.UNAVAILABLE, CloseCode.TRY_AGAIN_LATER, retry=True
    )
    INTERNAL_ERROR = ErrorSpec(
        "internal_error", 500, RpcCode.INTERNAL_ERROR, CloseCode.INTERNAL_ERROR, retry=True
    )

    @property
    def code(self) -> str:
        return self.value.code

    @property
    def http_status(self) -> int:
        return self.value.http_status

    @property
    def rpc_code(self) -> RpcCode:
        return self.value.rpc_code

    @property
    def close_code(self) -> CloseCode:
        return self.value.close_code


# A client sees only the JSON-RPC code, so retrying is decided per code (a test checks that no
# two kinds sharing a code disagree).
RETRYABLE_RPC_CODES = frozenset(kind.rpc_code for kind in ErrorKind if kind.value.retry)


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
