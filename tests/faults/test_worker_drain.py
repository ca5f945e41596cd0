"""SIGTERM drains a worker: no new jobs, running ones finish within the grace or are handed
back at once."""

from __future__ import annotations

import asyncio
import signal
import time

from tests.faults.conftest import Figures, MakeFaultStack, attempts, stall_url, started, types
from tests.origin import Origin
from tests.stack import submit

GRACE = 3
SHORT_JOB = 1.0  # seconds its page stalls: it fits the grace
LONG_JOB = 120  # it does not


async def test_sigterm_lets_short_jobs_finish_and_hands_back_the_rest(
    fault_stack: MakeFaultStack, origin: Origin, figures: Figures
) -> None:
    faults = await fault_stack(env={"PUSHGATE_WORKER_SHUTDOWN_GRACE": str(GRACE)})
    draining = await faults.start_worker()
    short = submit(faults.stack, stall_url(origin, SHORT_JOB))
    long = submit(faults.stack, stall_url(origin, LONG_JOB))
    for request_id in (short, long):
        await faults.wait_events(request_id, started, 10, "started")
    draining.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    late = submit(faults.stack, origin.url("/pages/links.html"))
    await asyncio.sleep(0.5)
    assert types(await faults.events(late)) == ["queued"], "a draining worker took a new job"

    await faults.start_worker()
    events = await faults.outcome(short, GRACE + 5)
    assert types(events) == ["queued", "started", "result"]
    late_events = await faults.outcome(late, 10)
    assert types(late_events) == ["queued", "started", "result"]
    await faults.wait_events(
        long, lambda e: types(e).count("started") == 2, GRACE + 5, "re-run elsewhere"
    )
    rerun_after = time.monotonic() - signalled
    exit_code = await asyncio.to_thread(draining.wait, GRACE + 10)
    exited_after = time.monotonic() - signalled
    events = await faults.outcome(long, 10)
    figures.add("SIGTERM -> long job re-run elsewhere", f"{rerun_after:.2f} s (grace {GRACE} s)")
    figures.add("SIGTERM -> draining worker exit", f"{exited_after:.2f} s, code {exit_code}")
    figures.add("long job events", " ".join(types(events)))
    assert exit_code == 0
    assert types(events) == ["queued", "started", "started", "result"]
    # The hand-back gave its try back: the re-run is the same try.
    assert attempts(events) == [1, 1]
