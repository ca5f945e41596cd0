"""Probes: ``/healthz`` says the process runs, ``/readyz`` that it can serve (Redis answers, and
the gateway is not draining)."""

from __future__ import annotations

import asyncio

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.errors import error_response
from gateway.services import services
from pushgate.core.errors import ErrorKind, PushgateError

READY_TIMEOUT = 1.0


async def healthz(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    svc = services(request)
    if svc.connections.draining:  # first, so the load balancer stops sending at once
        return error_response(
            PushgateError(ErrorKind.UNAVAILABLE, "gateway is draining: it is shutting down")
        )
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await svc.backend.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        return error_response(
            PushgateError(ErrorKind.UNAVAILABLE, f"redis does not answer: {exc!r}")
        )
    if not svc.hub.connected:
        return error_response(
            PushgateError(ErrorKind.UNAVAILABLE, "redis pub/sub connection is down")
        )
    return JSONResponse({"status": "ready"})


ROUTES = [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
