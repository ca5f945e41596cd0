"""Probes: ``/healthz`` says the process runs, ``/readyz`` that it can serve (Redis answers, the
pub/sub of each broker shard is up, and the gateway is not draining).

``/readyz`` lists every broker shard (index, address without password, up) in its answer, so a
503 names the shard that is down. With ``PUSHGATE_READY_WITH_SHARDS_DOWN`` the gateway stays
ready while at least one shard is up: subscriptions to a down shard's channels are answered
"unavailable" meanwhile. On a Redis Cluster the list is the cluster's masters as the slot map
names them (index: place in that list, sorted by address; it changes when masters do).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.errors import error_response
from gateway.services import Services, services
from pushgate.broker.cluster_pubsub import ClusterPubSub
from pushgate.broker.cluster_store import ClusterStore
from pushgate.broker.shards import Shard
from pushgate.core.errors import ErrorKind, PushgateError

READY_TIMEOUT = 1.0
_REDIS_ERRORS = (RedisError, OSError, TimeoutError)


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
            await svc.redis.ping()
    except _REDIS_ERRORS as exc:
        return error_response(
            PushgateError(ErrorKind.UNAVAILABLE, f"redis does not answer: {exc!r}")
        )
    shards = await shard_health(svc)
    down = [shard for shard in shards if not shard["up"]]
    if down and not (svc.settings.ready_with_shards_down and len(down) < len(shards)):
        named = ", ".join(
            f"{shard['index']} ({shard['address']}: {shard['error']})" for shard in down
        )
        error = PushgateError(ErrorKind.UNAVAILABLE, f"broker shards down: {named}")
        return error_response(error, extra={"shards": shards})
    return JSONResponse({"status": "ready", "shards": shards})


async def shard_health(svc: Services) -> list[dict[str, Any]]:
    """Each broker shard: index, address (no password), and whether it is up (it answers a
    PING and the gateway's pub/sub connection to it is up), with why not."""
    cluster, store = svc.hub.cluster, svc.backend.cluster
    if cluster is not None and store is not None:
        return await _masters(cluster, store)
    return list(await asyncio.gather(*(_shard(svc, shard) for shard in svc.backend.shards)))


async def _masters(cluster: ClusterPubSub, store: ClusterStore) -> list[dict[str, Any]]:
    """Each master of the cluster as a shard: up when it answers a PING and the gateway's
    pub/sub connection to it is up."""
    masters = cluster.masters()
    if not masters:
        return [{"index": 0, "address": "(no slot map yet)", "up": False, "error": "no slot map"}]
    return list(
        await asyncio.gather(
            *(
                _master(store, index, address, connected)
                for index, (address, connected) in enumerate(masters)
            )
        )
    )


async def _master(store: ClusterStore, index: int, address: str, connected: bool) -> dict[str, Any]:
    return await _probe(
        {"index": index, "address": address}, lambda: store.ping_master(address), connected
    )


async def _shard(svc: Services, shard: Shard) -> dict[str, Any]:
    state: dict[str, Any] = {"index": shard.index, "address": shard.address}
    return await _probe(state, shard.backend.ping, svc.hub.hubs[shard.index].connected)


async def _probe(
    state: dict[str, Any], ping: Callable[[], Awaitable[bool]], connected: bool
) -> dict[str, Any]:
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await ping()
    except _REDIS_ERRORS as exc:
        return {**state, "up": False, "error": f"does not answer: {type(exc).__name__}"}
    if not connected:
        return {**state, "up": False, "error": "pub/sub connection is down"}
    return {**state, "up": True}


ROUTES = [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
