"""The one Redis pub/sub connection of a gateway process, as a stream of typed events.

redis-py traps handled here (see shared notes): the connection is opened once at start, before
any subscribe; a permanent control channel keeps the reader blocked on the socket even when no
client channel is subscribed; a silent dead peer is found by pinging when idle; and after a
reconnect redis-py resubscribes by itself, which shows up as fresh confirmations.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from pushgate.backend import PREFIX, channel_from_redis, decode_live, redis_channel
from pushgate.wire import Publication

CONTROL_CHANNEL = f"{PREFIX}control"
# Missing this many ping intervals in a row means the connection is dead.
_DEAD_AFTER_INTERVALS = 3


@dataclass(frozen=True, slots=True)
class Confirmed:
    """Redis confirmed a subscribe or unsubscribe of ``channel``."""

    channel: str
    subscribed: bool


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection broke; the next ``next_event`` reconnects and resubscribes."""

    reason: str


LiveEvent = Publication | Confirmed | Disconnected


class PubSubConnection:
    """Subscribe, unsubscribe and read; exactly one task may call ``next_event``."""

    def __init__(self, redis_url: str, *, ping_interval: float) -> None:
        self._redis: Redis = Redis.from_url(redis_url, decode_responses=True, socket_keepalive=True)
        self._pubsub: PubSub = self._redis.pubsub()
        self._ping_interval = ping_interval
        self._last_heard = 0.0

    async def start(self) -> None:
        await self._pubsub.subscribe(CONTROL_CHANNEL)
        self._last_heard = asyncio.get_running_loop().time()

    async def close(self) -> None:
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self._redis.aclose()

    async def subscribe(self, channel: str) -> None:
        await self._pubsub.subscribe(redis_channel(channel))

    async def unsubscribe(self, channel: str) -> None:
        await self._pubsub.unsubscribe(redis_channel(channel))

    async def next_event(self) -> LiveEvent:
        loop = asyncio.get_running_loop()
        while True:
            try:
                message = await self._pubsub.get_message(timeout=self._ping_interval)
                if message is None:
                    await self._keepalive(loop.time())
                    continue
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                return Disconnected(str(exc) or type(exc).__name__)
            self._last_heard = loop.time()
            event = self._decode(message)
            if event is not None:
                return event

    async def _keepalive(self, now: float) -> None:
        if now - self._last_heard > self._ping_interval * _DEAD_AFTER_INTERVALS:
            connection = self._pubsub.connection
            if connection is not None:
                await connection.disconnect()
            self._last_heard = now
            raise RedisTimeoutError("no reply to pings on the pub/sub connection")
        await self._pubsub.ping()

    @staticmethod
    def _decode(message: dict[str, str]) -> LiveEvent | None:
        name = message.get("channel")
        if name is None or name == CONTROL_CHANNEL:
            return None  # pong, or the control channel's own confirmations
        kind = message["type"]
        if kind == "message":
            return decode_live(name, message["data"])
        if kind in ("subscribe", "unsubscribe"):
            return Confirmed(channel_from_redis(name), subscribed=kind == "subscribe")
        return None
