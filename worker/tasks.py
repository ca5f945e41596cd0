"""The scrape job: fetch a page, extract its links, publish every step on the job's channel."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx

from pushgate.broker.store import Backend, job_history
from pushgate.core import events
from pushgate.core.settings import Settings
from worker.fetch import FetchError, Page, build_client, fetch_page
from worker.links import ParsedPage, parse_page

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerDeps:
    """What every scrape job of one worker process shares; built once at start-up."""

    settings: Settings
    backend: Backend
    http: httpx.AsyncClient
    # Parsing is CPU-bound; off the event loop it cannot stall arq's heartbeats or other jobs.
    parser: ThreadPoolExecutor


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    ctx["deps"] = WorkerDeps(
        settings=settings,
        backend=Backend(ctx["redis"], jobs=job_history(settings.history)),
        http=build_client(settings.fetch, allow_private=settings.fetch.allow_private_addresses),
        parser=ThreadPoolExecutor(max_workers=2, thread_name_prefix="pushgate-parse"),
    )


async def shutdown(ctx: dict[str, Any]) -> None:
    deps: WorkerDeps | None = ctx.get("deps")
    if deps is not None:
        await deps.http.aclose()
        deps.parser.shutdown(wait=False, cancel_futures=True)


async def scrape(ctx: dict[str, Any], request_id: str, url: str) -> str:
    """arq task ``scrape``; returns the type of the terminal event it published."""
    deps: WorkerDeps = ctx["deps"]
    job = await deps.backend.get_job(request_id)
    if job is not None and job.finished:
        return job.status  # a re-run after a crash that came after the outcome was published
    attempt = int(ctx.get("job_try", 1))
    await deps.backend.publish_job_event(request_id, events.started(request_id, url, attempt))
    began = time.monotonic()
    try:
        page = await _fetch_with_retries(deps, url)
        max_links = deps.settings.fetch.max_links
        parsed = await asyncio.get_running_loop().run_in_executor(
            deps.parser,
            partial(parse_page, page.body, page.final_url, page.charset, max_links=max_links),
        )
        outcome = _result_event(request_id, url, page, parsed, began)
    except FetchError as exc:
        outcome = events.failed(request_id, exc.code, exc.message)
    await deps.backend.publish_job_event(request_id, outcome)
    return str(outcome["type"])


async def _fetch_with_retries(deps: WorkerDeps, url: str) -> Page:
    retry = 0
    while True:
        try:
            return await fetch_page(deps.http, url, deps.settings.fetch)
        except FetchError as exc:
            retry += 1
            if not exc.transient or retry > deps.settings.fetch.retries:
                raise
            delay = deps.settings.fetch.retry_delay(retry) * random.uniform(0.5, 1.0)
            log.info("fetch of %s failed (%s), retry %d in %.2fs", url, exc.code, retry, delay)
            await asyncio.sleep(delay)


def _result_event(
    request_id: str, url: str, page: Page, parsed: ParsedPage, began: float
) -> events.Event:
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
