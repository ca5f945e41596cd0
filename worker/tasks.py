"""The scrape job: fetch a page, extract its links, publish every step on the job's channel."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import httpx
from arq.worker import Retry
from redis.asyncio import Redis

from pushgate.broker.jobqueue import UNAVAILABLE, give_back_try, wait_for_replicas
from pushgate.broker.shards import ShardedStore
from pushgate.core import events
from pushgate.core.events import FailureCode
from pushgate.core.settings import Settings
from worker.fetch import FetchError, Page, build_client, fetch_page
from worker.lease import leased
from worker.links import ParsedPage, parse_page
from worker.metrics import MetricsServer, WorkerMetrics
from worker.outage import REDIS_SOCKET_TIMEOUT, retrying

log = logging.getLogger(__name__)

T = TypeVar("T")

# Tries a job gets. A try is spent only when it ends without an outcome (its worker died, froze
# or lost Redis; fetch retries happen inside a try), so a job survives a crashed worker or two
# but cannot crash-loop the pool forever.
MAX_TRIES = 3


@dataclass(frozen=True, slots=True)
class WorkerDeps:
    """What every scrape job of one worker process shares; built once at start-up."""

    settings: Settings
    redis: Redis  # arq's pool, for the job's lease and tries
    backend: ShardedStore  # the broker plane: job records and events, on the job's shard
    http: httpx.AsyncClient
    # Parsing is CPU-bound; off the event loop it cannot stall arq's heartbeats or other jobs.
    parser: ThreadPoolExecutor
    metrics: WorkerMetrics
    metrics_server: MetricsServer | None


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    metrics = WorkerMetrics()
    server = None
    if settings.metrics.worker_port:
        server = MetricsServer(
            metrics, ctx["redis"], settings.metrics.host, settings.metrics.worker_port
        )
        server.start()
    ctx["deps"] = WorkerDeps(
        settings=settings,
        redis=ctx["redis"],
        # Job events go to the shard of the job's channel, like every publication.
        backend=ShardedStore.connect(settings, ctx["redis"], socket_timeout=REDIS_SOCKET_TIMEOUT),
        http=build_client(settings.fetch, allow_private=settings.fetch.allow_private_addresses),
        parser=ThreadPoolExecutor(max_workers=2, thread_name_prefix="pushgate-parse"),
        metrics=metrics,
        metrics_server=server,
    )


async def shutdown(ctx: dict[str, Any]) -> None:
    deps: WorkerDeps | None = ctx.get("deps")
    if deps is not None:
        await deps.http.aclose()
        await deps.backend.aclose()
        deps.parser.shutdown(wait=False, cancel_futures=True)
        if deps.metrics_server is not None:
            await deps.metrics_server.stop()


async def scrape(ctx: dict[str, Any], request_id: str, url: str) -> str:
    """arq task ``scrape``; returns the type of the terminal event it published.

    Every run ends in exactly one terminal event of the job, published here: a re-run after the
    outcome is out publishes nothing (the store refuses events after a terminal one).
    """
    deps: WorkerDeps = ctx["deps"]
    job_id, job_try = str(ctx["job_id"]), int(ctx["job_try"])
    async with leased(deps.redis, job_id, deps.settings.pool.lease_seconds):
        try:
            return await _attempt(deps, request_id, url, job_try)
        except asyncio.CancelledError:
            # Only a stopping worker cancels a job (arq's own timeout and aborts are off), and
            # arq re-queues it at once: the interrupted try is not the job's to count.
            await _give_back_try(deps, job_id, job_try, request_id)
            raise
        except UNAVAILABLE as exc:
            # Redis stayed away for a whole lease: re-queue the job (it keeps no outcome yet)
            # instead of letting arq record it as finished.
            log.warning("job stopped, Redis unavailable (%s); retrying it later", exc,
                        extra={"request_id": request_id, "attempt": job_try})  # fmt: skip
            raise Retry(defer=deps.settings.pool.reconnect_max_delay) from exc


async def _attempt(deps: WorkerDeps, request_id: str, url: str, job_try: int) -> str:
    fields: dict[str, object] = {"request_id": request_id, "attempt": job_try}
    job = await _redis(deps, lambda: deps.backend.get_job(request_id))
    if job is not None and job.finished:
        log.info("job already finished (%s): nothing to do", job.status, extra=fields)
        return job.status  # a re-run after a crash that came after the outcome was published
    outcome: events.TerminalEvent
    if job_try > MAX_TRIES:
        message = f"the job was interrupted {MAX_TRIES} times without an outcome"
        outcome = events.failed(request_id, FailureCode.WORKER_LOST, message)
    else:
        started = events.started(request_id, url, job_try)
        await _redis(deps, lambda: deps.backend.publish_job_event(request_id, started))
        deps.metrics.jobs_started.inc()
        log.info("job started", extra=fields)
        began = time.monotonic()
        outcome = await _outcome(deps, request_id, url)
        deps.metrics.job_duration.labels(outcome["type"]).observe(time.monotonic() - began)
    if await _redis(deps, lambda: _publish_outcome(deps, request_id, outcome)):
        code = outcome["error"]["code"] if outcome["type"] == "failed" else ""
        deps.metrics.jobs_finished.labels(outcome["type"], code).inc()
        log.info(
            "job finished: %s", outcome["type"], extra={**fields, "code": code} if code else fields
        )
    return str(outcome["type"])


async def _publish_outcome(
    deps: WorkerDeps, request_id: str, outcome: events.TerminalEvent
) -> str | None:
    """Publish the terminal event; behind Sentinel, return only once a replica has it too, so
    that arq does not mark the job done while a failover could still lose its outcome (then it
    runs again on the new master; a repeat publishes nothing)."""
    offset = await deps.backend.publish_job_event(request_id, outcome)
    settings = deps.settings
    await wait_for_replicas(deps.redis, settings.wait_replicas, settings.redis_wait_timeout)
    return offset


async def _outcome(deps: WorkerDeps, request_id: str, url: str) -> events.TerminalEvent:
    """The terminal event of fetching and parsing ``url``, whatever goes wrong on the way."""
    began = time.monotonic()
    limit = deps.settings.job_timeout
    deadline = asyncio.timeout(limit)
    try:
        async with deadline:
            page = await _fetch_with_retries(deps, request_id, url)
            max_links = deps.settings.fetch.max_links
            parsed = await asyncio.get_running_loop().run_in_executor(
                deps.parser,
                partial(parse_page, page.body, page.final_url, page.charset, max_links=max_links),
            )
    except FetchError as exc:
        return events.failed(request_id, exc.code, exc.message)
    except Exception:
        if deadline.expired():
            message = f"the job took longer than {limit:g} s"
            return events.failed(request_id, FailureCode.TIMEOUT, message)
        log.exception("scrape of %s failed unexpectedly", url, extra={"request_id": request_id})
        message = "the worker failed unexpectedly"
        return events.failed(request_id, FailureCode.INTERNAL_ERROR, message)
    return _result_event(request_id, url, page, parsed, began)


async def _redis(deps: WorkerDeps, call: Callable[[], Awaitable[T]]) -> T:
    """A Redis call of the job, carried across outages as long as its lease would last."""
    settings = deps.settings
    return await retrying(
        call, window=settings.pool.lease_seconds, cap=settings.pool.reconnect_max_delay
    )


async def _give_back_try(deps: WorkerDeps, job_id: str, job_try: int, request_id: str) -> None:
    try:
        # Shielded: a second cancellation must not leave the try counted after all.
        await asyncio.shield(give_back_try(deps.redis, job_id, job_try))
    except UNAVAILABLE as exc:
        fields = {"request_id": request_id, "attempt": job_try}
        log.warning("could not give back the job's try %d: %s", job_try, exc, extra=fields)


async def _fetch_with_retries(deps: WorkerDeps, request_id: str, url: str) -> Page:
    retry = 0
    while True:
        try:
            with deps.metrics.fetch_duration.time():
                page = await fetch_page(deps.http, url, deps.settings.fetch)
            deps.metrics.fetch_bytes.observe(len(page.body))
            return page
        except FetchError as exc:
            retry += 1
            if not exc.transient or retry > deps.settings.fetch.retries:
                raise
            deps.metrics.fetch_retries.inc()
            delay = deps.settings.fetch.retry_delay(retry) * random.uniform(0.5, 1.0)
            fields = {"request_id": request_id, "code": exc.code}
            log.info("fetch of %s failed (%s), retry %d in %.2fs", url, exc.code, retry, delay,
                     extra=fields)  # fmt: skip
            await asyncio.sleep(delay)


def _result_event(
    request_id: str, url: str, page: Page, parsed: ParsedPage, began: float
) -> events.ResultEvent:
    return events.result(
        request_id,
        url,
        final_url=page.final_url,
        status_code=page.status_code,
        title=parsed.title,
        links=parsed.links,
        links_truncated=parsed.links_truncated,
        elapsed_ms=round((time.monotonic() - began) * 1000),
    )
