"""What the socket endpoints do to subscribe a feed, and the bound on the Redis calls they wait
for: a client is answered "unavailable, retry" rather than kept waiting on Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Protocol, TypeVar

from redis.exceptions import RedisError

from gateway.delivery.feed import Feed
from gateway.delivery.hub import Subscriber, unavailable
from gateway.delivery.positions import Position, PositionReads
from gateway.services import Services

# Redis confirms a subscribe in milliseconds, even thousands at once; past this it is not well.
SUBSCRIBE_TIMEOUT = 5.0

T = TypeVar("T")


async def subscribe_feed(svc: Services, channel: str, feed: Feed) -> None:
    """Subscribe ``feed`` through the hub; PushgateError(UNAVAILABLE) at once while the hub is
    disconnected from Redis, and when Redis does not confirm in time."""
    try:
        async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
            await svc.hub.subscribe(channel, feed)
    except TimeoutError:
        svc.hub.unsubscribe(channel, feed)
        raise unavailable() from None


class Subscriptions(Protocol):
    """A hub: one (``Hub``) or one per broker shard (``ShardedHub``)."""

    async def subscribe(self, channel: str, subscriber: Subscriber) -> None: ...
    def unsubscribe(self, channel: str, subscriber: Subscriber) -> None: ...


async def subscribe_at_newest(
    hub: Subscriptions,
    reads: PositionReads,
    channel: str,
    feed: Subscriber,
    *,
    redis_timeout: float,
) -> Position:
    """Subscribe ``feed``, then read the channel's newest position (where ``feed`` starts),
    bounded as ``subscribe_feed`` and ``from_redis`` bound each (``SUBSCRIBE_TIMEOUT``, then
    ``redis_timeout``) by one timer: a connect storm pays for one instead of two. Unavailable
    as those are, and ``feed`` is then unsubscribed again."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(SUBSCRIBE_TIMEOUT) as timer:
            await hub.subscribe(channel, feed)
            timer.reschedule(loop.time() + redis_timeout)
            return await reads.read(channel)
    except BaseException as exc:
        hub.unsubscribe(channel, feed)
        if isinstance(exc, RedisError | OSError | TimeoutError):
            raise unavailable() from None
        raise


async def from_redis(svc: Services, call: Awaitable[T]) -> T:
    """``call``'s answer within ``PUSHGATE_REDIS_TIMEOUT``; PushgateError(UNAVAILABLE) when
    Redis fails or is slower (PushgateErrors of ``call`` itself pass through)."""
    try:
        async with asyncio.timeout(svc.settings.redis_timeout):
            return await call
    except (RedisError, OSError, TimeoutError):
        raise unavailable() from None
