"""The arq queue shared by gateway (enqueues) and worker (runs): names and JSON serialization.

JSON instead of arq's default pickle: whoever can write to Redis must not run code in workers.
"""

from __future__ import annotations

import json
import time
from typing import Any

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, retry_key_prefix
from redis import exceptions
from redis.asyncio import ConnectionPool, Redis

from pushgate.broker.keys import QUEUE_NAME

SCRAPE_TASK = "scrape"
# What redis-py raises when Redis cannot be reached or stops answering (a restarting Redis that
# is still loading its data answers with BusyLoadingError, a ConnectionError).
UNAVAILABLE: tuple[type[Exception], ...] = (exceptions.ConnectionError, exceptions.TimeoutError)


def serialize(data: dict[str, Any]) -> bytes:
    # default=str: a failed job's result is an exception; arq stores its text, not a pickle.
    return json.dumps(data, default=str).encode()


def deserialize(raw: bytes) -> dict[str, Any]:
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("arq job payload is not a JSON object")
    return data


def connect(redis_url: str, *, socket_timeout: float | None = None) -> ArqRedis:
    """A Redis client (bytes replies) that can also enqueue arq jobs; connects lazily.

    ``socket_timeout`` bounds each reply, for clients that never block on Redis on purpose.
    """
    pool = ConnectionPool.from_url(redis_url, socket_keepalive=True, socket_timeout=socket_timeout)
    return ArqRedis(
        pool,
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name=QUEUE_NAME,
    )


async def enqueue_scrape(redis: ArqRedis, request_id: str, url: str) -> None:
    """Queue the scrape once: the arq job id is the request id, so a repeat is a no-op."""
    await redis.enqueue_job(SCRAPE_TASK, request_id, url, _job_id=request_id)


# arq marks a running job with an in-progress key (no other worker starts the job while it
# exists) and counts its tries in a retry key, incremented at every start.


async def renew_lease(redis: Redis, job_id: str, seconds: float) -> None:
    """Make arq's in-progress mark of a running job lapse ``seconds`` from now."""
    await redis.pexpire(in_progress_key_prefix + job_id, round(seconds * 1000))


async def give_back_try(redis: Redis, job_id: str, job_try: int) -> None:
    """Uncount try ``job_try`` of a job about to be re-queued, so its next start is that try."""
    await redis.set(retry_key_prefix + job_id, job_try - 1, keepttl=True, xx=True)


async def queue_depth(redis: Redis) -> tuple[int, float | None]:
    """Jobs waiting in the queue, and how long the oldest has waited (seconds; None if none).

    arq scores each queued job with the time it may run, in milliseconds.
    """
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(QUEUE_NAME)
        pipe.zrange(QUEUE_NAME, 0, 0, withscores=True)
        depth, oldest = await pipe.execute()
    age = max(0.0, time.time() - oldest[0][1] / 1000) if oldest else None
    return int(depth), age
