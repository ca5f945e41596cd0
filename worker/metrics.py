"""A worker's Prometheus metrics, served on ``PUSHGATE_WORKER_METRICS_PORT`` (arq has no HTTP
server): jobs started and finished, durations, fetches, retries, and the queue it works on.

Labels are bounded: an outcome and a failure code, never a URL or request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from redis.asyncio import Redis
from redis.exceptions import RedisError

from pushgate.broker.jobqueue import queue_depth

log = logging.getLogger(__name__)

QUEUE_REFRESH_SECONDS = 5.0
_SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_BYTES = (1e3, 1e4, 1e5, 1e6, 5e6, 1e7)


class WorkerMetrics:
    """One worker process's metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.jobs_started = Counter(
            "pushgate_worker_jobs_started", "Job runs started (re-runs included)", registry=registry
        )
        self.jobs_finished = Counter(
            "pushgate_worker_jobs_finished",
            "Jobs ended by this worker, by terminal event and failure code",
            ["outcome", "code"],
            registry=registry,
        )
        self.job_duration = Histogram(
            "pushgate_worker_job_duration_seconds",
            "Fetching and parsing of one job run",
            ["outcome"],
            buckets=_SECONDS,
            registry=registry,
        )
        self.fetch_duration = Histogram(
            "pushgate_worker_fetch_duration_seconds",
            "One fetch attempt, redirects included",
            buckets=_SECONDS,
            registry=registry,
        )
        self.fetch_bytes = Histogram(
            "pushgate_worker_fetch_bytes",
            "Decoded body of a fetched page",
            buckets=_BYTES,
            registry=registry,
        )
        self.fetch_retries = Counter(
            "pushgate_worker_fetch_retries",
            "Fetch attempts retried after a transient failure",
            registry=registry,
        )
        self.queue_depth = Gauge(
            "pushgate_worker_queue_depth", "Jobs waiting in the queue", registry=registry
        )
        self.queue_oldest = Gauge(
            "pushgate_worker_queue_oldest_seconds",
            "How long the oldest queued job has waited (0 when none waits)",
            registry=registry,
        )


class MetricsServer:
    """The HTTP server of ``/metrics``, and the task that keeps the queue gauges fresh."""

    def __init__(self, metrics: WorkerMetrics, redis: Redis, host: str, port: int) -> None:
        self._metrics = metrics
        self._redis = redis
        self._http: WSGIServer | None = None
        self._refresh: asyncio.Task[None] | None = None
        self._address = (host, port)

    def start(self) -> None:
        host, port = self._address
        self._http, _thread = start_http_server(port, host, registry=self._metrics.registry)
        self._refresh = asyncio.get_running_loop().create_task(self._refresh_queue())

    async def stop(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    async def _refresh_queue(self) -> None:
        while True:
            try:
                depth, oldest = await queue_depth(self._redis)
            except (RedisError, OSError) as exc:  # the queue gauges keep their last value
                log.debug("queue depth unavailable: %s", exc)
            else:
                self._metrics.queue_depth.set(depth)
                self._metrics.queue_oldest.set(oldest or 0.0)
            await asyncio.sleep(QUEUE_REFRESH_SECONDS)
