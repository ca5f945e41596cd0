"""Riding out Redis outages: calls tried again with capped, fully jittered backoff."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis

from pushgate.broker.jobqueue import UNAVAILABLE
from pushgate.client.wire import backoff_delay

T = TypeVar("T")

# A worker never blocks on Redis on purpose (arq polls its queue), so a reply this late means
# Redis stopped answering (a network partition): an error to retry, not a worker hung for good.
REDIS_SOCKET_TIMEOUT = 5.0
# The first retry comes within 50 ms: a connection Redis dropped is often back at once.
_BASE_DELAY = 0.05


async def retrying(call: Callable[[], Awaitable[T]], *, window: float, cap: float) -> T:
    """``call()``, made again while Redis is unavailable, for up to ``window`` seconds in all;
    after that the last error is raised."""
    began = time.monotonic()
    attempt = 0
    while True:
        try:
            return await call()
        except UNAVAILABLE:
            delay = backoff_delay(attempt, base=_BASE_DELAY, cap=cap)
            if time.monotonic() - began + delay > window:
                raise
            await asyncio.sleep(delay)
            attempt += 1


async def wait_for_redis(redis: Redis, *, cap: float) -> float:
    """Return once Redis answers a PING, however long that takes; returns the seconds waited."""
    began = time.monotonic()
    await retrying(redis.ping, window=math.inf, cap=cap)
    return time.monotonic() - began
