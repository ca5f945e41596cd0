"""A running job's lease: arq's in-progress mark, kept short and renewed while the job runs.

arq marks a job in progress for its whole timeout, so a job whose worker was killed waited that
long for another worker. As a lease renewed every third of its length, the mark lapses soon
after its worker stops renewing it (it died, or its event loop froze), and the next worker that
polls the queue starts the job again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis

from pushgate.broker.jobqueue import UNAVAILABLE, renew_lease

log = logging.getLogger(__name__)


@asynccontextmanager
async def leased(redis: Redis, job_id: str, seconds: float) -> AsyncIterator[None]:
    """Hold the lease of job ``job_id`` while the block runs."""
    # At once: under `arq worker.WorkerSettings` the mark lasts arq's in-progress timeout.
    await _renew(redis, job_id, seconds)
    renewer = asyncio.create_task(_keep_renewing(redis, job_id, seconds))
    try:
        yield
    finally:
        renewer.cancel()


async def _keep_renewing(redis: Redis, job_id: str, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds / 3)
        await _renew(redis, job_id, seconds)


async def _renew(redis: Redis, job_id: str, seconds: float) -> None:
    try:
        await renew_lease(redis, job_id, seconds)
    except UNAVAILABLE as exc:
        # Nobody can take the job over while Redis is away; the next renewal may get through.
        # arq's job id is the request id (``jobqueue.enqueue_scrape``).
        log.warning("could not renew the job's lease: %s", exc, extra={"request_id": job_id})
