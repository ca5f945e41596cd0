"""Fault tests: a Redis of each test's own (to kill), a gateway, workers started and killed by
pid, and a table of what each test measured, printed at the end of the session."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import pytest
from arq.constants import health_check_key_suffix

from pushgate.broker import jobqueue
from pushgate.broker.keys import QUEUE_NAME
from pushgate.broker.store import Backend, job_history
from pushgate.cli.redis_sentinel import SentinelGroup
from pushgate.cli.redis_server import RedisServer
from pushgate.core.events import TERMINAL_TYPES
from pushgate.core.settings import Settings
from pushgate.core.wire import job_channel
from tests.conftest import OPEN_ENV
from tests.origin import Origin
from tests.stack import MODULE_WORKER, Stack

T = TypeVar("T")
Event = dict[str, Any]

# Fetches outlast every stall a test provokes: only the fault under test ends them.
FAULT_ENV = {**OPEN_ENV, "PUSHGATE_ALLOW_PRIVATE_ADDRESSES": "true", "PUSHGATE_FETCH_TIMEOUT": "30"}
POLL_INTERVAL = 0.05
# arq writes it on a worker's first poll of the queue, then once an hour.
HEALTH_KEY = QUEUE_NAME + health_check_key_suffix
WORKER_READY_TIMEOUT = 20.0

_FIGURES = pytest.StashKey[list[tuple[str, str, str]]]()


class Figures:
    """What one test measured; printed now, and in the table at the end of the session."""

    def __init__(self, test: str, rows: list[tuple[str, str, str]]) -> None:
        self._test = test
        self._rows = rows

    def add(self, figure: str, value: object) -> None:
        print(f"{self._test}: {figure} = {value}")
        self._rows.append((self._test, figure, str(value)))


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    rows = request.config.stash.setdefault(_FIGURES, [])
    return Figures(request.node.name, rows)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    rows = config.stash.get(_FIGURES, [])
    if not rows:
        return
    terminalreporter.section("fault figures")
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for test, figure, value in rows:
        terminalreporter.write_line(f"{test:<{widths[0]}}  {figure:<{widths[1]}}  {value}")


async def until(check: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
    """The first truthy result of ``check()``, polled for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / POLL_INTERVAL) + 1):
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(POLL_INTERVAL)
    raise AssertionError(f"not within {timeout:g} s: {what}")


def types(events: list[Event]) -> list[str]:
    return [event["type"] for event in events]


def stall_url(origin: Origin, seconds: float, times: int = 1) -> str:
    """A page whose first ``times`` requests stall ``seconds``; a re-run after that gets it."""
    return origin.url(f"/stall?key={uuid.uuid4().hex}&times={times}&seconds={seconds:g}")


def started(events: list[Event]) -> bool:
    return any(event["type"] == "started" for event in events)


def finished(events: list[Event]) -> bool:
    return any(event["type"] in TERMINAL_TYPES for event in events)


def attempts(events: list[Event]) -> list[int]:
    return [event["attempt"] for event in events if event["type"] == "started"]


class FaultStack:
    """One gateway and workers (``python -m worker`` unless told) on a Redis tests may kill;
    behind Sentinel, ``group`` is the Sentinel group and ``redis`` its first master."""

    def __init__(
        self, redis: RedisServer, stack: Stack, group: SentinelGroup | None = None
    ) -> None:
        self.redis = redis
        self.stack = stack
        self.group = group
        self._client = jobqueue.connect(stack.redis_url)
        self._backend = Backend(self._client, jobs=job_history(Settings().history))

    async def aclose(self) -> None:
        await self._client.aclose(close_connection_pool=True)

    async def start_worker(self) -> subprocess.Popen[bytes]:
        """A worker that is polling the queue by the time this returns."""
        await self._client.delete(HEALTH_KEY)
        worker = self.stack.start_worker()

        async def polling() -> bool:
            assert worker.poll() is None, f"worker exited with {worker.returncode}"
            return bool(await self._client.exists(HEALTH_KEY))

        await until(polling, WORKER_READY_TIMEOUT, "the new worker polls the queue")
        return worker

    def kill_redis(self) -> None:
        assert self.redis.process is not None
        self.redis.process.send_signal(signal.SIGKILL)
        self.redis.process.wait()

    def restart_redis(self) -> None:
        """On the same port and directory: with ``appendonly`` it has its data back."""
        self.redis.start()

    async def events(self, request_id: str) -> list[Event]:
        history = await self._backend.history(job_channel(request_id))
        return [publication.data for publication in history]

    async def wait_events(
        self, request_id: str, done: Callable[[list[Event]], bool], timeout: float, what: str
    ) -> list[Event]:
        """The job's events once ``done(events)`` holds."""

        async def check() -> list[Event] | None:
            events = await self.events(request_id)
            return events if done(events) else None

        return await until(check, timeout, f"job {request_id}: {what}")

    async def queued(self, request_id: str) -> bool:
        """Whether arq still holds the job (queued, or running and not yet marked done)."""
        return await self._client.zscore(QUEUE_NAME, request_id) is not None

    async def outcome(self, request_id: str, timeout: float) -> list[Event]:
        """The job's events once it has ended: its terminal event is out, and arq has let go of
        it, so no re-run can follow."""
        await self.wait_events(request_id, finished, timeout, "a terminal event")

        async def dequeued() -> bool:
            return not await self.queued(request_id)

        await until(dequeued, timeout, f"job {request_id} leaves arq's queue")
        return await self.events(request_id)


MakeFaultStack = Callable[..., Awaitable[FaultStack]]


@pytest.fixture
async def fault_stack() -> AsyncIterator[MakeFaultStack]:
    """``await fault_stack(env=..., appendonly=..., worker_argv=...)``: a FaultStack with no
    worker yet."""
    async with AsyncExitStack() as cleanup:

        async def make(
            *,
            env: dict[str, str] | None = None,
            appendonly: bool = False,
            worker_argv: Sequence[str] = MODULE_WORKER,
        ) -> FaultStack:
            redis = RedisServer(appendonly=appendonly).start()
            cleanup.callback(redis.stop)
            stack = Stack(
                redis.url,
                gateways=1,
                workers=0,
                env={**FAULT_ENV, **(env or {})},
                worker_argv=worker_argv,
            )
            cleanup.enter_context(stack)
            faults = FaultStack(redis, stack)
            cleanup.push_async_callback(faults.aclose)
            return faults

        yield make


@pytest.fixture
async def sentinel_stack(request: pytest.FixtureRequest) -> AsyncIterator[FaultStack]:
    """A FaultStack behind Sentinel: a master, a replica (or as many as the test's indirect
    parameter says, every one of them waited for) and three sentinels, one ``pushgate gateway``
    and one ``python -m worker`` (polling), all on the group's redis+sentinel:// URL."""
    replicas = getattr(request, "param", 1)
    env = {**FAULT_ENV, "PUSHGATE_REDIS_WAIT_REPLICAS": str(replicas)}
    async with AsyncExitStack() as cleanup:
        group = SentinelGroup(replicas=replicas).start()
        cleanup.callback(group.stop)
        stack = cleanup.enter_context(
            Stack(group.url, gateways=0, workers=0, env=env, worker_argv=MODULE_WORKER)
        )
        stack.start_drainable_gateway()
        faults = FaultStack(group.master, stack, group)
        cleanup.push_async_callback(faults.aclose)
        await faults.start_worker()
        yield faults
