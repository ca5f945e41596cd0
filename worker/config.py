"""arq worker settings derived from pushgate settings."""

from __future__ import annotations

import sys
from typing import Any

from arq.worker import func

from pushgate.broker import jobqueue
from pushgate.broker.keys import QUEUE_NAME
from pushgate.core import logs
from pushgate.core.settings import Settings
from worker.outage import REDIS_SOCKET_TIMEOUT
from worker.tasks import scrape, shutdown, startup


def worker_settings(settings: Settings) -> dict[str, Any]:
    """The mapping arq's ``Worker`` takes; arq accepts a dict wherever it takes a settings class."""
    logs.configure(settings.log_format, settings.log_level, settings.secrets)
    settings.validate_brokers()
    return {
        "functions": [func(scrape, name=jobqueue.SCRAPE_TASK)],
        # The pool the worker uses; the settings are for `arq --check`.
        "redis_pool": jobqueue.connect(settings.redis_url, socket_timeout=REDIS_SOCKET_TIMEOUT),
        "redis_settings": jobqueue.arq_settings(settings.redis_url),
        "queue_name": QUEUE_NAME,
        "job_serializer": jobqueue.serialize,
        "job_deserializer": jobqueue.deserialize,
        "max_jobs": settings.pool.concurrency,
        "poll_delay": settings.pool.poll_delay,
        # Off: scrape bounds its own work and publishes `failed` with code timeout, where arq's
        # timeout would cancel it and record the job as finished without a terminal event.
        "job_timeout": None,
        # scrape counts tries itself (MAX_TRIES) and publishes `worker_lost`; past its own limit
        # arq would drop the job without running it, so without a terminal event.
        "max_tries": sys.maxsize,
        "job_completion_wait": settings.pool.shutdown_grace,
        # Our job record holds the outcome; arq's own result only needs to outlive a retry race.
        "keep_result": 60,
        "ctx": {"settings": settings},
        "on_startup": startup,
        "on_shutdown": shutdown,
    }
