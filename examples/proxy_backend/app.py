"""A backend of the RPC proxy (``PUSHGATE_RPC_PROXY_URL=http://<host>:<port>/rpc``), in Starlette.

The gateway POSTs every ``rpc`` call here as ``{"method", "params", "user", "client"}``, with
the caller's connection token as ``Authorization: Bearer`` when authentication is on, and relays the
answer: ``{"result": ...}``, or ``{"error": {"type", "message"}}`` when the method failed; 404
for a method there is not. The gateway has checked the token already; a backend reachable by
anyone else than the gateways must check it again (it is the app's own JWT).

    uvicorn examples.proxy_backend.app:app --port 9000
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

Method = Callable[[Any, dict[str, Any]], Any]


def greet(params: dict[str, Any], call: dict[str, Any]) -> str:
    return f"Hello, {params['name']}! (from the backend, to client {call['client']})"


def divide(params: dict[str, Any], call: dict[str, Any]) -> float:
    return float(params["a"] / params["b"])


METHODS: dict[str, Method] = {"greet": greet, "divide": divide}


async def rpc(request: Request) -> JSONResponse:
    call = await request.json()
    method = METHODS.get(call.get("method"))
    if method is None:
        return JSONResponse({"error": {"message": "no such method"}}, status_code=404)
    try:
        return JSONResponse({"result": method(call.get("params"), call)})
    except Exception as exc:
        return JSONResponse({"error": {"type": type(exc).__name__, "message": str(exc)}})


async def healthz(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[Route("/rpc", rpc, methods=["POST"]), Route("/healthz", healthz, methods=["GET"])]
)
