"""A backend of the RPC proxy for tests (``uvicorn tests.rpc_backend:app``): one method per
answer the gateway must map, and a count of the requests in flight."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_flight: dict[str, dict[str, int]] = {}  # by tag: requests in flight now, and the most at once


async def _slow(seconds: float, tag: str) -> float:
    counts = _flight.setdefault(tag, {"now": 0, "max": 0})
    counts["now"] += 1
    counts["max"] = max(counts["max"], counts["now"])
    try:
        await asyncio.sleep(seconds)
    finally:
        counts["now"] -= 1
    return seconds


async def rpc(request: Request) -> Response:
    call: dict[str, Any] = await request.json()
    method: str = call["method"]
    params: Any = call.get("params")
    if method == "whoami":
        result = {**call, "authorization": request.headers.get("authorization")}
        return JSONResponse({"result": result})
    if method == "slow":  # params: seconds, or [seconds, tag]
        seconds, tag = params if isinstance(params, list) else (params, "")
        return JSONResponse({"result": await _slow(seconds, tag)})
    if method == "flight":  # the most "slow" requests of a tag that were in flight at once
        return JSONResponse({"result": _flight.get(params, {}).get("max", 0)})
    if method == "fail":
        return JSONResponse({"error": {"type": "KeyError", "message": "no such key"}})
    if method == "status":
        return Response(status_code=int(params))
    if method == "not_json":
        return Response("<html>oops</html>", media_type="text/html")
    if method == "neither":
        return JSONResponse({"outcome": "unclear"})
    if method == "huge":
        return JSONResponse({"result": "x" * (2 * 1024 * 1024)})
    return JSONResponse({"error": {"message": "no such method"}}, status_code=404)


async def healthz(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[Route("/rpc", rpc, methods=["POST"]), Route("/healthz", healthz, methods=["GET"])]
)
