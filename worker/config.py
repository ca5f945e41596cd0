"""arq worker settings derived from pushgate settings."""

from __future__ import annotations

from typing import Any

from arq.connections import RedisSettings
from arq.worker import func

from pushgate.broker import jobqueue
from pushgate.broker.keys import QUEUE_NAME
from pushgate.core import logs
from pushgate.core.settings import Settings
from worker.tasks import scrape, shutdown, startup

# A try is spent only when a worker dies mid-job (fetch retries happen inside the job), so a
# job survives a crashed worker or two but cannot crash-loop the pool forever.
MAX_TRIES = 3


def worker_settings(settings: Settings) -> dict[str, Any]:
    """The mapping arq's ``Worker`` takes; arq accepts a dict wherever it takes a settings class."""
    logs.configure(settings.log_format, settings.log_level, settings.secrets)
    return {
        "functions": [func(scrape, name=jobqueue.SCRAPE_TASK)],
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": QUEUE_NAME,
        "job_serializer": jobqueue.serialize,
        "job_deserializer": jobqueue.deserialize,
        "max_jobs": settings.pool.concurrency,
        "poll_delay": settings.pool.poll_delay,
        "job_timeout": settings.fetch.job_timeout,
        "max_tries": MAX_TRIES,
        "job_completion_wait": settings.pool.shutdown_grace,
        # Our job record holds the outcome; arq's own result only needs to outlive a retry race.
        "keep_result": 60,
        "ctx": {"settings": settings},
        "on_startup": startup,
        "on_shutdown": shutdown,
    }
