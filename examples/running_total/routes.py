"""``PUSHGATE_RPC_ROUTES=examples.running_total.routes:ROUTES``: one total for everybody.

``add`` adds a number to the total and pushes ``Server records total=N`` to every client
subscribed to ``totals:running``, whichever gateway it is connected to. The total is kept in
Redis, not in the gateway: gateways come and go, and a client may reach any of them. Each push
carries the total's ``version`` too: pushes of concurrent calls made on different gateways may
arrive in either order, and a client that keeps the highest version shows the latest total.
The ``totals`` namespace must be configured with ``"publish": false`` so that only the server
writes there (``python -m examples.running_total`` does).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import redis.asyncio as redis

if TYPE_CHECKING:
    from gateway.rpc.context import RpcContext

CHANNEL = "totals:running"
KEY = "examples:running_total"
NAMESPACES = {
    "chat": {"publish": True, "history_size": 100, "history_ttl": 3600},
    "totals": {"publish": False, "history_size": 10},
}
_store: redis.Redis | None = None


def store() -> redis.Redis:
    """The app's own Redis client (the gateway's Redis here, but any would do)."""
    global _store
    if _store is None:
        _store = redis.Redis.from_url(os.environ.get("PUSHGATE_REDIS_URL", "redis://localhost"))
    return _store


async def add(ctx: RpcContext, number: int) -> int:
    """Adds ``number`` to the total; returns the new total."""
    if isinstance(number, bool) or not isinstance(number, int):
        raise TypeError(f"send an integer, not {number!r}")
    async with store().pipeline(transaction=True) as pipe:  # total and version move together
        pipe.hincrby(KEY, "total", number)
        pipe.hincrby(KEY, "version", 1)
        total, version = await pipe.execute()
    text = f"Server records total={total}"
    await ctx.publish(CHANNEL, {"text": text, "total": total, "version": version})
    return int(total)


async def total(ctx: RpcContext, _params: object) -> int:
    """The total as it is now."""
    stored = await store().hget(KEY, "total")  # type: ignore[misc]  # redis-py's sync/async union
    return int(stored or 0)


ROUTES = {"add": add, "total": total}
