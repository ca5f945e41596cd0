"""The gateway ASGI app: `uvicorn gateway.app:app`, or `uvicorn --factory gateway.app:create_app`.

Settings are read from the environment when the app is created, not when this module is
imported: ``app`` is built on first access. ``pushgate gateway`` (``gateway/server.py``) runs
this app with a graceful drain on SIGTERM; under plain uvicorn, SIGTERM is uvicorn's.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from gateway import request_head
from gateway.delivery.connections import DRAIN_CODE, DRAIN_REASON, Connections
from gateway.delivery.direct import SERVER_SEND, check_fast_path_available
from gateway.delivery.positions import PositionReads
from gateway.delivery.shards import ShardedHub
from gateway.endpoints import health, openapi, pages, sse, status, ws_jobs, ws_rpc
from gateway.endpoints import jobs as jobs_api
from gateway.endpoints import publish as publish_api
from gateway.errors import EXCEPTION_HANDLERS
from gateway.job_wait import JobWaits
from gateway.metrics import GatewayMetrics, count_http, metrics_endpoint, route_templates
from gateway.rpc import build_backend
from gateway.services import Services
from pushgate.broker import jobqueue
from pushgate.broker.ratelimit import RateLimiter
from pushgate.broker.shards import ShardedStore
from pushgate.core import logs
from pushgate.core.auth import Authenticator
from pushgate.core.channels import Namespaces
from pushgate.core.settings import Settings


def create_app(settings: Settings | None = None, connections: Connections | None = None) -> ASGIApp:
    """The app; ``connections`` is the registry a drain walks (the server that drains it passes
    its own)."""
    resolved = settings if settings is not None else Settings.from_env(os.environ)
    resolved.auth.validate_gateway()
    resolved.validate_brokers()
    logs.configure(resolved.log_format, resolved.log_level, resolved.secrets)
    if connections is None:
        connections = Connections(resolved.limits.max_connections)
    namespaces = Namespaces.from_settings(resolved.history)  # fails fast on a bad namespace config
    metrics = GatewayMetrics()
    request_head.install(resolved.limits.header_timeout)  # uvicorn has no bound of its own
    rpc = build_backend(resolved.rpc)  # imports the app's routes: fails fast on those too
    limits = resolved.limits

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, Services]]:
        check_fast_path_available()
        redis = jobqueue.connect(resolved.redis_url)
        backend = ShardedStore.connect(resolved, redis)
        hub = ShardedHub.build(resolved, backend, metrics)
        metrics.watch(
            lambda: len(connections), lambda: hub.channel_count, lambda: hub.subscriber_count
        )
        metrics_server = metrics.serve(resolved.metrics.host, port) if port else None
        await hub.start()
        try:
            yield {
                "services": Services(
                    settings=resolved,
                    redis=redis,
                    backend=backend,
                    positions=PositionReads(backend, timeout=resolved.redis_timeout),
                    hub=hub,
                    auth=Authenticator(resolved.auth),
                    namespaces=namespaces,
                    connections=connections,
                    rates=RateLimiter(redis, resolved.rates),
                    started_at=time.monotonic(),
                    metrics=metrics,
                    rpc=rpc,
                    job_waits=JobWaits(limits.job_wait_max_sockets, limits.job_wait_seconds),
                )
            }
        finally:
            if metrics_server is not None:
                metrics_server.shutdown()
                metrics_server.server_close()
            await hub.stop()
            await backend.aclose()
            if rpc is not None:
                await rpc.aclose()
            await redis.aclose(close_connection_pool=True)

    port = resolved.metrics.port
    routes = [
        *jobs_api.ROUTES,
        *publish_api.ROUTES,
        *ws_jobs.ROUTES,
        *sse.ROUTES,
        *health.ROUTES,
        *pages.ROUTES,
        *openapi.ROUTES,
        *status.ROUTES,
        # On its own port when one is set, so that it can stay off the public route.
        *([] if port else [Route("/metrics", metrics_endpoint(metrics), methods=["GET"])]),
    ]
    starlette = Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)
    counted = count_http(starlette, metrics, route_templates(routes))
    return _with_realtime_socket(counted, connections)


def _with_realtime_socket(starlette: ASGIApp, connections: Connections) -> ASGIApp:
    """Route ``WS /ws`` around Starlette's per-message wrappers: the hottest path of all gets
    uvicorn's own ``send`` (see ``direct.py``); everything else, lifespan included, is Starlette,
    and its WebSocket endpoints find uvicorn's ``send`` in the scope. While draining, every new
    WebSocket is closed with 1012 right after the handshake (HTTP is still served, so calls in
    flight finish).
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and connections.draining:
            await _refuse(WebSocket(scope, receive, send))
        elif scope["type"] == "websocket" and scope["path"] == "/ws":
            await ws_rpc.rpc_socket(scope, receive, send)
            return
        if scope["type"] == "websocket":  # Starlette's endpoints get a wrapped send
            scope[SERVER_SEND] = send
        await starlette(scope, receive, send)

    return app


async def _refuse(websocket: WebSocket) -> None:
    # Accepted first: a refused handshake (HTTP 403) reads as final to clients, a close
    # code as what to do next.
    await websocket.accept()
    await websocket.close(DRAIN_CODE, DRAIN_REASON)


def __getattr__(name: str) -> ASGIApp:
    if name == "app":
        return create_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
