"""Reading a JSON request body with a hard size limit."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from pushgate.core.errors import ErrorKind, PushgateError


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    raw = await _read_limited(request, limit)
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PushgateError(
            ErrorKind.MALFORMED_JSON, f"request body is not valid JSON: {exc}"
        ) from None
    if not isinstance(body, dict):
        raise PushgateError(ErrorKind.INVALID_BODY, "request body must be a JSON object")
    return body


async def _read_limited(request: Request, limit: int) -> bytes:
    too_large = PushgateError(ErrorKind.BODY_TOO_LARGE, f"request body exceeds {limit} bytes")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)
