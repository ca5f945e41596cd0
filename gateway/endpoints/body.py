"""Reading a JSON request body: bounded in size and in time, and strict JSON (``parse_json``).

A body over the limit is still read to its end and dropped, up to ``DRAIN_BYTES``, before the
413 goes out: a client that wrote it in one go would otherwise have its connection reset while
writing and never read the answer. A body declared larger than that, or announced with
``Expect: 100-continue`` (the client waits for our word before sending it), is answered at once
and the connection closed, as is one that does not arrive within ``body_timeout``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request

from pushgate.core.errors import ErrorKind, PushgateError
from pushgate.core.settings import LimitSettings
from pushgate.core.wire import parse_json

DRAIN_BYTES = 16 * 1024 * 1024


async def read_json_object(request: Request, limits: LimitSettings) -> dict[str, Any]:
    raw = await _read_limited(request, limits)
    body = parse_json(raw, "request body")
    if not isinstance(body, dict):
        raise PushgateError(ErrorKind.INVALID_BODY, "request body must be a JSON object")
    return body


async def _read_limited(request: Request, limits: LimitSettings) -> bytes:
    limit = limits.max_body_bytes
    declared = _declared_length(request.headers)
    waits = "100-continue" in request.headers.get("expect", "").lower()
    if declared is not None and declared > limit and (declared > DRAIN_BYTES or waits):
        raise _too_large(limit, read_to_end=False)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(limits.body_timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > DRAIN_BYTES:
                    raise _too_large(limit, read_to_end=False)
                if size > limit:
                    chunks.clear()  # only read on, so that the client reads the 413
                else:
                    chunks.append(chunk)
    except ClientDisconnect:  # nobody reads this answer; it only keeps an error out of the log
        message = "the connection closed before the request body ended"
        raise PushgateError(ErrorKind.BAD_REQUEST, message, closes=True) from None
    except TimeoutError:
        if size > limit:
            raise _too_large(limit, read_to_end=False) from None
        message = f"the request body did not arrive within {limits.body_timeout:g} s"
        raise PushgateError(ErrorKind.REQUEST_TIMEOUT, message, closes=True) from None
    if size > limit:
        raise _too_large(limit, read_to_end=True)
    return b"".join(chunks)


def _declared_length(headers: Headers) -> int | None:
    declared = headers.get("content-length")
    if declared is None or not (declared.isascii() and declared.isdigit()):
        return None  # uvicorn's parser has refused any other length already
    return int(declared[:20])  # 20 digits are more than any limit: no huge int() for a header


def _too_large(limit: int, *, read_to_end: bool) -> PushgateError:
    """``read_to_end``: the body was read, so the connection can serve another request."""
    message = f"request body exceeds {limit} bytes"
    return PushgateError(ErrorKind.BODY_TOO_LARGE, message, closes=not read_to_end)
