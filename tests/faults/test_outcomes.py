"""Whatever ends a job ends it in exactly one terminal event: the job timeout, an error of the
worker's own, a re-run after the outcome was out."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from pushgate.broker import jobqueue
from pushgate.broker.shards import ShardedStore
from pushgate.cli.redis_server import RedisServer
from pushgate.core import events
from pushgate.core.events import FailureCode
from pushgate.core.settings import FetchSettings, Settings
from pushgate.core.wire import job_channel
from tests.conftest import redis_db
from tests.faults.conftest import Figures, MakeFaultStack, stall_url, started, types
from tests.origin import Origin
from tests.stack import submit
from worker.tasks import WorkerDeps, scrape, shutdown, startup

JOB_TIMEOUT = 1.0


async def test_a_job_past_its_timeout_fails_with_code_timeout(
    fault_stack: MakeFaultStack, origin: Origin, figures: Figures
) -> None:
    faults = await fault_stack(env={"PUSHGATE_JOB_TIMEOUT_SECONDS": str(JOB_TIMEOUT)})
    await faults.start_worker()
    request_id = submit(faults.stack, stall_url(origin, 120))
    await faults.wait_events(request_id, started, 10, "started")
    began = time.monotonic()
    found = await faults.outcome(request_id, JOB_TIMEOUT + 10)
    figures.add(
        "started -> failed/timeout",
        f"{time.monotonic() - began:.2f} s (job timeout {JOB_TIMEOUT:g} s)",
    )
    assert types(found) == ["queued", "started", "failed"]
    assert found[-1]["error"] == {
        "code": "timeout",
        "message": f"the job took longer than {JOB_TIMEOUT:g} s",
    }


@pytest.fixture
async def worker_ctx(redis_server: RedisServer) -> AsyncIterator[dict[str, Any]]:
    """What arq hands ``scrape``, from the worker's own ``startup``, on a real Redis."""
    redis = jobqueue.connect(redis_db(redis_server, 3))
    ctx: dict[str, Any] = {
        "settings": Settings(fetch=FetchSettings(allow_private_addresses=True)),
        "redis": redis,
    }
    await startup(ctx)
    yield ctx
    await shutdown(ctx)
    await redis.aclose(close_connection_pool=True)


async def job_events(backend: ShardedStore, request_id: str) -> list[dict[str, Any]]:
    return [p.data for p in await backend.history(job_channel(request_id))]


async def test_an_error_of_the_worker_fails_the_job_as_internal_error_once(
    worker_ctx: dict[str, Any], origin: Origin, figures: Figures
) -> None:
    # A parser pool that was shut down: a real dependency, broken as no page can break it.
    broken = ThreadPoolExecutor(max_workers=1)
    broken.shutdown()
    deps: WorkerDeps = dataclasses.replace(worker_ctx["deps"], parser=broken)
    ctx = {**worker_ctx, "deps": deps, "job_id": f"unit-{uuid.uuid4().hex}", "job_try": 1}
    request_id, url = ctx["job_id"], origin.url("/pages/links.html")
    await deps.backend.create_job(request_id, url, "")

    assert await scrape(ctx, request_id, url) == "failed"
    first = await job_events(deps.backend, request_id)
    assert types(first) == ["queued", "started", "failed"]
    # Nothing of the worker's internals (the executor's own message) reaches clients.
    assert first[-1]["error"] == {
        "code": "internal_error",
        "message": "the worker failed unexpectedly",
    }

    # A re-run (its worker died before arq recorded the end) publishes nothing.
    assert await scrape({**ctx, "job_try": 2}, request_id, url) == "failed"
    assert await job_events(deps.backend, request_id) == first
    figures.add("events", " ".join(types(first)) + "; a re-run adds none")


async def test_the_store_publishes_nothing_after_a_terminal_event(
    worker_ctx: dict[str, Any], origin: Origin
) -> None:
    backend: ShardedStore = worker_ctx["deps"].backend
    request_id, url = f"unit-{uuid.uuid4().hex}", origin.url("/pages/links.html")
    await backend.create_job(request_id, url, "")
    outcome = events.failed(request_id, FailureCode.TIMEOUT, "first")
    assert await backend.publish_job_event(request_id, outcome) is not None
    late: list[events.Event] = [
        events.failed(request_id, FailureCode.WORKER_LOST, "second"),
        events.started(request_id, url, 2),
    ]
    for event in late:
        assert await backend.publish_job_event(request_id, event) is None
    assert types(await job_events(backend, request_id)) == ["queued", "failed"]
    job = await backend.get_job(request_id)
    assert job is not None
    assert (job.status, job.error) == ("failed", {"code": "timeout", "message": "first"})
