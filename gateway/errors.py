"""Every HTTP error is ``{"error": {"code", "message"}}``, its status read from the error table."""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pushgate.core.errors import ErrorKind, PushgateError, RateLimitedError

log = logging.getLogger(__name__)

# What Starlette's own routing and parsing raise, as kinds of the table.
_STARLETTE_KINDS = {
    400: ErrorKind.BAD_REQUEST,
    404: ErrorKind.NOT_FOUND,
    405: ErrorKind.METHOD_NOT_ALLOWED,
    413: ErrorKind.BODY_TOO_LARGE,
    415: ErrorKind.UNSUPPORTED_MEDIA_TYPE,
}


def error_response(error: PushgateError, *, extra: dict[str, Any] | None = None) -> JSONResponse:
    """The error as JSON (with the fields of ``extra`` next to it); one that ``closes`` ends the
    connection after the answer."""
    body = {"error": {"code": error.code, "message": error.message}, **(extra or {})}
    headers: dict[str, str] = {}
    if isinstance(error, RateLimitedError):
        headers["Retry-After"] = str(error.retry_after)
    if error.closes:
        headers["Connection"] = "close"
    return JSONResponse(body, status_code=error.kind.http_status, headers=headers)


async def pushgate_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PushgateError)
    return error_response(exc)


async def http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    fallback = ErrorKind.INTERNAL_ERROR if exc.status_code >= 500 else ErrorKind.BAD_REQUEST
    kind = _STARLETTE_KINDS.get(exc.status_code, fallback)
    response = error_response(PushgateError(kind, exc.detail))
    response.headers.update(exc.headers or {})  # a 405's Allow, which RFC 9110 requires
    return response


async def redis_error(request: Request, exc: Exception) -> Response:
    log.warning("redis unavailable: %s", exc, extra=_fields(request))
    message = "the job store is unavailable; retry shortly"
    return error_response(PushgateError(ErrorKind.UNAVAILABLE, message))


async def internal_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error", exc_info=exc, extra=_fields(request))
    return error_response(PushgateError(ErrorKind.INTERNAL_ERROR, "internal server error"))


def _fields(request: Request) -> dict[str, object]:
    """The log fields of a failed request: the job it was about, if its path names one."""
    request_id = request.path_params.get("request_id")
    return {"request_id": request_id} if isinstance(request_id, str) else {}


EXCEPTION_HANDLERS = {
    PushgateError: pushgate_error,
    HTTPException: http_error,
    RedisError: redis_error,
    Exception: internal_error,
}
