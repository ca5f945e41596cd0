"""The gateway ASGI app: `uvicorn gateway.app:app`, or `uvicorn --factory gateway.app:create_app`.

Settings are read from the environment when the app is created, not when this module is
imported: ``app`` is built on first access.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from gateway import health, jobs_api, ws_jobs
from gateway.errors import EXCEPTION_HANDLERS
from gateway.hub import Hub
from gateway.services import Services
from pushgate import jobqueue
from pushgate.backend import Backend
from pushgate.pubsub import PubSubConnection
from pushgate.settings import Settings


def create_app(settings: Settings | None = None) -> Starlette:
    resolved = settings if settings is not None else Settings.from_env(os.environ)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, Services]]:
        redis = jobqueue.connect(resolved.redis_url)
        backend = Backend(
            redis, history_size=resolved.history_size, ttl_seconds=resolved.job_ttl_seconds
        )
        connection = PubSubConnection(
            resolved.redis_url, ping_interval=resolved.pubsub_ping_interval
        )
        hub = Hub(connection, backend)
        await hub.start()
        try:
            yield {"services": Services(resolved, redis, backend, hub)}
        finally:
            await hub.stop()
            await redis.aclose()

    return Starlette(
        routes=[*jobs_api.ROUTES, *ws_jobs.ROUTES, *health.ROUTES],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )


def __getattr__(name: str) -> Starlette:
    if name == "app":
        return create_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
