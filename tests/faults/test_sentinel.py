"""The queue plane behind Redis Sentinel: ``SENTINEL FAILOVER`` while jobs are submitted and
subscribers listen, with a real master, replica, three sentinels, gateway and worker.

Accepted (2xx) means on the replica too (``PUSHGATE_REDIS_WAIT_REPLICAS``): every accepted job
reaches exactly one terminal event and keeps its record; a submission during the switch gets
503 ``unavailable`` and is retried with its request_id. Subscribers go on across the switch,
told ``recovered`` either way, never left with a silent gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field

import httpx
import pytest

from pushgate.client import PushgateClient
from pushgate.core.errors import ErrorKind
from pushgate.core.events import TERMINAL_TYPES
from tests.faults.conftest import FaultStack, Figures, finished, types
from tests.faults.gateway_faults import Publisher, Watcher, check, settle, stop_watchers, watch
from tests.origin import Origin
from tests.stack import BIN

SUBMISSIONS = 60
SUBMIT_PERIOD = 0.05  # seconds between new submissions
FAILOVER_AFTER = 15  # submissions sent before SENTINEL FAILOVER
RETRY_PERIOD = 0.2
RETRY_WINDOW = 40.0  # a submission is retried (same request_id) for this long at most
OUTCOME_TIMEOUT = 60.0


@dataclass
class Submission:
    request_id: str
    tries: int = 0
    accepted_at: float | None = None
    refusals: list[int] = field(default_factory=list)  # HTTP statuses before acceptance
    errors: list[str] = field(default_factory=list)  # connection errors before acceptance


async def submit_until_accepted(http: httpx.AsyncClient, url: str, job: Submission) -> None:
    """POST /jobs, retried with the same request_id on 503 or a lost connection (bounded)."""
    deadline = time.monotonic() + RETRY_WINDOW
    while time.monotonic() < deadline:
        job.tries += 1
        try:
            response = await http.post("/jobs", json={"url": url, "request_id": job.request_id})
        except httpx.TransportError as exc:
            job.errors.append(type(exc).__name__)
        else:
            if response.is_success:
                job.accepted_at = time.monotonic()
                return
            # The only refusal the switch may cause: the error table's retryable 503.
            assert response.status_code == ErrorKind.UNAVAILABLE.http_status, response.text
            assert response.json()["error"]["code"] == ErrorKind.UNAVAILABLE.code
            job.refusals.append(response.status_code)
        await asyncio.sleep(RETRY_PERIOD)


# Every replica is waited for: Sentinel may promote any of them (it ranks them by a replication
# offset it polls once a second), and with WAIT 1 of 2 an accepted job was lost this way.
@pytest.mark.parametrize("sentinel_stack", [1, 2], ids=["1-replica", "2-replicas"], indirect=True)
async def test_accepted_jobs_survive_a_failover(
    sentinel_stack: FaultStack, origin: Origin, figures: Figures
) -> None:
    faults = sentinel_stack
    assert faults.group is not None
    gateway = faults.stack.gateways[0]
    url = origin.url("/pages/links.html")
    jobs = [Submission(f"sentinel-{uuid.uuid4().hex}") for _ in range(SUBMISSIONS)]
    old_master = faults.group.master_address()
    async with httpx.AsyncClient(base_url=gateway.http_url, timeout=10) as http:
        tasks = []
        failover: asyncio.Task[tuple[str, int]] | None = None
        for n, job in enumerate(jobs):
            if n == FAILOVER_AFTER:
                switch_began = time.monotonic()
                failover = asyncio.create_task(asyncio.to_thread(faults.group.failover))
            tasks.append(asyncio.create_task(submit_until_accepted(http, url, job)))
            await asyncio.sleep(SUBMIT_PERIOD)
        assert failover is not None
        new_master = await failover
        switched_in = time.monotonic() - switch_began
        await asyncio.gather(*tasks)

    assert new_master != old_master
    assert all(job.accepted_at is not None for job in jobs), "a submission never got a 2xx"
    terminal_counts, histories = [], []
    for job in jobs:
        try:
            events = await faults.outcome(job.request_id, OUTCOME_TIMEOUT)
        except AssertionError as exc:  # with what the job got, and how it was submitted
            raise AssertionError(f"{job}: {types(await faults.events(job.request_id))}") from exc
        terminal_counts.append(sum(1 for event in events if event["type"] in TERMINAL_TYPES))
        histories.append(types(events))
    async with httpx.AsyncClient(base_url=gateway.http_url, timeout=10) as http:
        records = [await http.get(f"/jobs/{job.request_id}") for job in jobs]
    retried = [job for job in jobs if job.tries > 1]
    refused_at = [job.accepted_at for job in retried if job.accepted_at is not None]
    figures.add("sentinels name the new master after (s)", f"{switched_in:.2f}")
    figures.add("submissions retried (503 / connection lost)", f"{len(retried)} of {len(jobs)}")
    figures.add("503 answers, connection errors", (
        sum(len(job.refusals) for job in jobs), sum(len(job.errors) for job in jobs)
    ))  # fmt: skip
    if refused_at:
        figures.add(
            "switch to last retried acceptance (s)", f"{max(refused_at) - switch_began:.2f}"
        )
    figures.add("accepted jobs lost / with two outcomes", (
        terminal_counts.count(0), sum(1 for count in terminal_counts if count > 1)
    ))  # fmt: skip
    assert terminal_counts == [1] * len(jobs), [h for h in histories if h.count("result") != 1]
    assert [record.status_code for record in records] == [200] * len(jobs)
    assert all(record.json()["status"] in ("done", "failed") for record in records)
    # `pushgate status` shows the master the gateway resolved: the new one.
    status = subprocess.run(
        [str(BIN / "pushgate"), "status", gateway.http_url], capture_output=True, timeout=30
    )
    host, port = new_master
    assert f"{host}:{port} (sentinel {faults.group.master_name}) ok" in status.stdout.decode()


async def test_acceptance_and_outcomes_wait_for_the_replica(
    sentinel_stack: FaultStack, origin: Origin, figures: Figures
) -> None:
    """With the replica frozen (SIGSTOP) nothing is accepted (503 unavailable) and no outcome is
    recorded as final; once it is back, the retry is accepted and the job ends once."""
    faults = sentinel_stack
    assert faults.group is not None
    replica = faults.group.replicas[0].process
    assert replica is not None
    job = Submission(f"sentinel-frozen-{uuid.uuid4().hex}")
    body = {"url": origin.url("/pages/links.html"), "request_id": job.request_id}
    async with httpx.AsyncClient(base_url=faults.stack.gateways[0].http_url, timeout=10) as http:
        replica.send_signal(signal.SIGSTOP)
        try:
            refused = await http.post("/jobs", json=body)
            # The job exists on the master and runs; its outcome is published there...
            await faults.wait_events(job.request_id, finished, OUTCOME_TIMEOUT, "its outcome")
            # ...but the worker keeps the job from arq until the replica has the outcome too.
            held = await faults.queued(job.request_id)
        finally:
            replica.send_signal(signal.SIGCONT)
        frozen_for = time.monotonic()
        await submit_until_accepted(http, body["url"], job)
    events = await faults.outcome(job.request_id, OUTCOME_TIMEOUT)
    assert job.accepted_at is not None
    figures.add("accepted after the replica came back (s)", f"{job.accepted_at - frozen_for:.2f}")
    figures.add("events", " ".join(types(events)))
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == ErrorKind.UNAVAILABLE.code
    assert held
    assert sum(1 for event in events if event["type"] in TERMINAL_TYPES) == 1


async def test_subscribers_go_on_across_a_failover(
    sentinel_stack: FaultStack, figures: Figures
) -> None:
    faults = sentinel_stack
    assert faults.group is not None
    gateway = faults.stack.gateways[0]
    channels = [f"chat:failover-{uuid.uuid4().hex[:8]}-{n}" for n in range(3)]
    watchers = [Watcher(channel) for channel in channels]
    # A publication counts once the replica has it, as a job's acceptance does.
    publisher = Publisher(faults.stack.redis_url, channels, rate=30, replicas=1)
    clients = [
        PushgateClient(
            f"{gateway.ws_url}/ws", backoff_min=0.05, backoff_max=0.5, on_recovery=w.on_recovery
        )
        for w in watchers
    ]
    async with contextlib.AsyncExitStack() as cleanup:
        for client, watcher in zip(clients, watchers, strict=True):
            await cleanup.enter_async_context(client)
            await watch(client, watcher)
        publisher.start()
        await publisher.wait_acked(30)
        before = len(publisher.acked)
        switch_began = time.monotonic()
        await asyncio.to_thread(faults.group.failover)
        await publisher.wait_acked(before + 60)
        await publisher.stop()
        settled = await settle(watchers, publisher)
        await stop_watchers(watchers)
    verdicts = [check(watcher, publisher.of(watcher.channel)) for watcher in watchers]
    gap = max(
        (b.at - a.at for a, b in zip(publisher.acked, publisher.acked[1:], strict=False)),
        default=0.0,
    )
    figures.add("publications acked (failed tries)", (len(publisher.acked), publisher.failures))
    figures.add("longest gap between acks across the switch (s)", f"{gap:.2f}")
    figures.add("switch to end of test (s)", f"{time.monotonic() - switch_began:.2f}")
    figures.add("lost / duplicated / out of order / told", (
        sum(v.lost for v in verdicts), sum(v.duplicated for v in verdicts),
        sum(v.disordered for v in verdicts), sum(v.told for v in verdicts),
    ))  # fmt: skip
    assert settled
    assert [(v.lost, v.disordered) for v in verdicts] == [(0, 0)] * len(verdicts)
