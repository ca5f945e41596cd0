"""Redis goes away and comes back: workers wait for it, and no accepted job is left behind."""

from __future__ import annotations

import asyncio
import signal
import time

from tests.faults.conftest import (
    Event,
    FaultStack,
    Figures,
    MakeFaultStack,
    attempts,
    stall_url,
    started,
    types,
)
from tests.origin import Origin
from tests.stack import submit

OUTAGE_SECONDS = 3.0
# The worker's reconnect backoff (5 s cap by default), then the job itself.
RECOVERY_TIMEOUT = 30.0


async def timed_outcome(
    faults: FaultStack, request_id: str, since: float, label: str, figures: Figures
) -> list[Event]:
    """The job's events once it ends, with the time from ``since`` and the events as figures."""
    events = await faults.outcome(request_id, RECOVERY_TIMEOUT)
    figures.add(label, f"{time.monotonic() - since:.2f} s")
    figures.add("events", " ".join(types(events)))
    return events


async def test_idle_worker_waits_out_a_redis_restart_then_runs_a_new_job(
    fault_stack: MakeFaultStack, origin: Origin, figures: Figures
) -> None:
    faults = await fault_stack()
    worker = await faults.start_worker()
    faults.kill_redis()
    await asyncio.sleep(OUTAGE_SECONDS)
    assert worker.poll() is None, f"the worker exited with {worker.returncode} without Redis"
    faults.restart_redis()
    restarted = time.monotonic()
    request_id = submit(faults.stack, origin.url("/pages/links.html"))
    events = await timed_outcome(faults, request_id, restarted, "Redis back -> job result", figures)
    figures.add("worker alive after outage", f"yes ({OUTAGE_SECONDS:g} s without Redis)")
    assert types(events) == ["queued", "started", "result"]
    assert worker.poll() is None


async def test_job_queued_before_redis_died_runs_once_redis_and_its_worker_are_back(
    fault_stack: MakeFaultStack, origin: Origin, figures: Figures
) -> None:
    faults = await fault_stack(appendonly=True)
    worker = await faults.start_worker()
    # Frozen, the worker cannot pick the job up before Redis dies; thawed, it finds its
    # connections dead and the job still queued (the append-only file kept it).
    worker.send_signal(signal.SIGSTOP)
    try:
        request_id = submit(faults.stack, origin.url("/pages/links.html"))
        faults.kill_redis()
        await asyncio.sleep(OUTAGE_SECONDS)
        faults.restart_redis()
    finally:
        worker.send_signal(signal.SIGCONT)
    thawed = time.monotonic()
    events = await timed_outcome(
        faults, request_id, thawed, "Redis back -> queued job result", figures
    )
    assert types(events) == ["queued", "started", "result"]
    assert worker.poll() is None


async def test_running_job_carries_its_outcome_across_a_redis_restart(
    fault_stack: MakeFaultStack, origin: Origin, figures: Figures
) -> None:
    faults = await fault_stack(appendonly=True)
    worker = await faults.start_worker()
    stall = 2.0
    request_id = submit(faults.stack, stall_url(origin, stall))
    await faults.wait_events(request_id, started, 10, "started")
    # Redis is away when the page arrives: the outcome waits for it, inside the job's lease.
    faults.kill_redis()
    await asyncio.sleep(stall + 1)
    faults.restart_redis()
    restarted = time.monotonic()
    events = await timed_outcome(
        faults, request_id, restarted, "Redis back -> result published", figures
    )
    assert types(events) == ["queued", "started", "result"]
    assert worker.poll() is None


async def test_job_whose_redis_stays_away_past_its_lease_is_run_again(
    fault_stack: MakeFaultStack, origin: Origin, figures: Figures
) -> None:
    lease = 2.0
    faults = await fault_stack(env={"PUSHGATE_WORKER_LEASE_SECONDS": str(lease)}, appendonly=True)
    worker = await faults.start_worker()
    request_id = submit(faults.stack, stall_url(origin, 1.0))
    await faults.wait_events(request_id, started, 10, "started")
    # The outcome waits for Redis a lease long, then the try is given up and the job re-queued.
    faults.kill_redis()
    await asyncio.sleep(1.0 + 2 * lease)
    faults.restart_redis()
    restarted = time.monotonic()
    events = await timed_outcome(
        faults, request_id, restarted, "Redis back -> re-run's result", figures
    )
    assert types(events) == ["queued", "started", "started", "result"]
    assert attempts(events) == [1, 2]
    assert worker.poll() is None
