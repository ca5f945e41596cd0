"""``GET /status`` (with an API key): what this gateway holds and how its Redis, queue and
broker shards are.

``pushgate status`` prints it for any number of gateways, and ``/admin`` shows it live.
"""

from __future__ import annotations

import asyncio
import time
from importlib.metadata import version
from typing import Any
from urllib.parse import urlsplit

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from gateway.access import require_api_key
from gateway.endpoints.health import shard_health
from gateway.endpoints.pages import page
from gateway.services import Services, services
from pushgate.broker.jobqueue import master_address, queue_depth
from pushgate.core.redis_url import is_sentinel_url, parse_sentinel_url

REDIS_TIMEOUT = 1.0


async def status(request: Request) -> JSONResponse:
    svc = services(request)
    require_api_key(request.headers, svc.settings.auth.api_keys, auth_enabled=svc.auth.enabled)
    return JSONResponse(await gateway_status(svc))


async def gateway_status(svc: Services) -> dict[str, Any]:
    """The numbers of ``GET /status``."""
    connections = svc.connections
    return {
        "version": version("pushgate"),
        "uptime_seconds": round(time.monotonic() - svc.started_at, 1),
        "draining": connections.draining,
        "connections": {"open": len(connections), "ws": connections.capped},
        "connection_limit": connections.limit,
        "channels": svc.hub.channel_count,
        "subscriptions": svc.hub.subscriber_count,
        "redis": await _redis(svc),
        "shards": await shard_health(svc),
    }


async def _redis(svc: Services) -> dict[str, Any]:
    """The Redis of the queue (host and port only: a URL may hold a password; behind Sentinel,
    the master's name); ``pubsub``: the pub/sub connection of every broker shard is up
    (``shards`` says which is not)."""
    url = svc.settings.redis_url
    state: dict[str, Any] = {"pubsub": svc.hub.connected}
    if is_sentinel_url(url):
        state["sentinel"] = parse_sentinel_url(url).master_name
    else:
        parts = urlsplit(url)
        state["address"] = f"{parts.hostname}:{parts.port or 6379}"
    try:
        async with asyncio.timeout(REDIS_TIMEOUT):
            if "sentinel" in state:
                state["address"] = await master_address(svc.redis)
            depth, oldest = await queue_depth(svc.redis)
    except (RedisError, OSError, TimeoutError) as exc:
        return {**state, "ok": False, "error": type(exc).__name__}
    return {**state, "ok": True, "queue_depth": depth, "oldest_queued_seconds": oldest}


ROUTES: list[BaseRoute] = [
    Route("/status", status, methods=["GET"]),
    Route("/admin", page("admin.html"), methods=["GET"]),
]
