"""The gateway ASGI app: `uvicorn gateway.app:app`, or `uvicorn --factory gateway.app:create_app`.

Settings are read from the environment when the app is created, not when this module is
imported: ``app`` is built on first access.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.delivery.direct import SERVER_SEND
from gateway.delivery.hub import Hub
from gateway.endpoints import health, pages, sse, ws_jobs, ws_rpc
from gateway.endpoints import jobs as jobs_api
from gateway.endpoints import publish as publish_api
from gateway.errors import EXCEPTION_HANDLERS
from gateway.services import ConnectionGate, Services
from pushgate.broker import jobqueue
from pushgate.broker.pubsub import PubSubConnection
from pushgate.broker.store import Backend, job_history
from pushgate.core.auth import Authenticator
from pushgate.core.channels import Namespaces
from pushgate.core.settings import Settings


def create_app(settings: Settings | None = None) -> ASGIApp:
    resolved = settings if settings is not None else Settings.from_env(os.environ)
    resolved.auth.validate_gateway()
    namespaces = Namespaces.from_settings(resolved.history)  # fails fast on a bad namespace config

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, Services]]:
        redis = jobqueue.connect(resolved.redis_url)
        backend = Backend(redis, jobs=job_history(resolved.history))
        connection = PubSubConnection(
            resolved.redis_url, ping_interval=resolved.pubsub_ping_interval
        )
        hub = Hub(
            connection,
            backend,
            redis_timeout=resolved.redis_timeout,
            position_check=resolved.position_check_seconds,
        )
        await hub.start()
        try:
            yield {
                "services": Services(
                    settings=resolved,
                    redis=redis,
                    backend=backend,
                    hub=hub,
                    auth=Authenticator(resolved.auth),
                    namespaces=namespaces,
                    connections=ConnectionGate(resolved.limits.max_connections),
                )
            }
        finally:
            await hub.stop()
            await redis.aclose()

    starlette = Starlette(
        routes=[
            *jobs_api.ROUTES,
            *publish_api.ROUTES,
            *ws_jobs.ROUTES,
            *sse.ROUTES,
            *health.ROUTES,
            *pages.ROUTES,
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    return _with_realtime_socket(starlette)


def _with_realtime_socket(starlette: Starlette) -> ASGIApp:
    """Route ``WS /ws`` around Starlette's per-message wrappers: the hottest path of all gets
    uvicorn's own ``send`` (see ``direct.py``); everything else, lifespan included, is Starlette,
    and its WebSocket endpoints find uvicorn's ``send`` in the scope.
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == "/ws":
            await ws_rpc.rpc_socket(scope, receive, send)
            return
        if scope["type"] == "websocket":  # Starlette's endpoints get a wrapped send
            scope[SERVER_SEND] = send
        await starlette(scope, receive, send)

    return app


def __getattr__(name: str) -> ASGIApp:
    if name == "app":
        return create_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
