"""Workers killed mid-job: the job is taken over once its lease lapses, and ends exactly once."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

import pytest

from pushgate.core.settings import Settings
from tests.faults.conftest import Event, Figures, MakeFaultStack, attempts, stall_url, types
from tests.origin import Origin
from tests.stack import ARQ_WORKER, MODULE_WORKER, submit
from tests.wsclient import read_all
from worker.tasks import MAX_TRIES

LEASE = Settings().pool.lease_seconds
# The lease lapses at most LEASE after the kill; the next poll and the job's start come on top.
TAKEOVER_BOUND = LEASE + 3.0
# Longer than any test here runs: only killing its worker ends a stalled fetch.
STALL_SECONDS = 120


def started_try(number: int) -> Callable[[list[Event]], bool]:
    return lambda events: number in attempts(events)


# The lease lives in the task, so arq's own CLI gets it too.
@pytest.mark.parametrize("worker_argv", [MODULE_WORKER, ARQ_WORKER], ids=["module", "arq-cli"])
async def test_job_of_a_killed_worker_is_taken_over_within_the_lease(
    fault_stack: MakeFaultStack, origin: Origin, figures: Figures, worker_argv: tuple[str, ...]
) -> None:
    faults = await fault_stack(worker_argv=worker_argv)
    first = await faults.start_worker()
    request_id = submit(faults.stack, stall_url(origin, STALL_SECONDS))
    watcher = asyncio.create_task(
        read_all(f"{faults.stack.gateways[0].ws_url}/ws/jobs/{request_id}", timeout=60)
    )
    await faults.wait_events(request_id, started_try(1), 10, "started by the first worker")
    await faults.start_worker()
    first.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    await faults.wait_events(request_id, started_try(2), TAKEOVER_BOUND, "taken over")
    took = time.monotonic() - killed
    events = await faults.outcome(request_id, 30)
    figures.add("SIGKILL -> taken over", f"{took:.2f} s (lease {LEASE:g} s)")
    figures.add("events", " ".join(types(events)))
    assert types(events) == ["queued", "started", "started", "result"]
    assert attempts(events) == [1, 2]
    transcript = await watcher
    assert transcript.types == types(events)
    assert transcript.close_code == 1000


async def test_job_that_kills_every_worker_it_starts_on_fails_as_worker_lost(
    fault_stack: MakeFaultStack, origin: Origin, figures: Figures
) -> None:
    lease = 2.0
    faults = await fault_stack(env={"PUSHGATE_WORKER_LEASE_SECONDS": str(lease)})
    request_id = submit(faults.stack, stall_url(origin, STALL_SECONDS, times=100))
    for attempt in range(1, MAX_TRIES + 1):
        worker = await faults.start_worker()
        await faults.wait_events(request_id, started_try(attempt), lease + 10, f"try {attempt}")
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    last_kill = time.monotonic()
    await faults.start_worker()
    events = await faults.outcome(request_id, lease + 10)
    figures.add("last SIGKILL -> worker_lost", f"{time.monotonic() - last_kill:.2f} s")
    figures.add("events", " ".join(types(events)))
    assert types(events) == ["queued", *["started"] * MAX_TRIES, "failed"]
    assert attempts(events) == list(range(1, MAX_TRIES + 1))
    assert events[-1]["error"]["code"] == "worker_lost"
