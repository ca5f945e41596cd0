"""The arq queue shared by gateway (enqueues) and worker (runs): names and JSON serialization.

JSON instead of arq's default pickle: whoever can write to Redis must not run code in workers.
"""

from __future__ import annotations

import json
from typing import Any

from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool

from pushgate.broker.keys import QUEUE_NAME

SCRAPE_TASK = "scrape"


def serialize(data: dict[str, Any]) -> bytes:
    # default=str: a failed job's result is an exception; arq stores its text, not a pickle.
    return json.dumps(data, default=str).encode()


def deserialize(raw: bytes) -> dict[str, Any]:
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("arq job payload is not a JSON object")
    return data


def connect(redis_url: str) -> ArqRedis:
    """A Redis client (bytes replies) that can also enqueue arq jobs; connects lazily."""
    pool = ConnectionPool.from_url(redis_url, socket_keepalive=True)
    return ArqRedis(
        pool,
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name=QUEUE_NAME,
    )


async def enqueue_scrape(redis: ArqRedis, request_id: str, url: str) -> None:
    """Queue the scrape once: the arq job id is the request id, so a repeat is a no-op."""
    await redis.enqueue_job(SCRAPE_TASK, request_id, url, _job_id=request_id)
