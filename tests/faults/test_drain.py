"""Graceful drain: SIGTERM to ``pushgate gateway`` closes its sockets with 1012 spread over
``PUSHGATE_DRAIN_SECONDS``, and a rolling restart under load loses and repeats nothing."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pushgate.cli.redis_server import RedisServer
from tests.conftest import OPEN_ENV
from tests.faults.drain_helpers import (
    Closed,
    Fleet,
    Publisher,
    histogram,
    open_job_socket,
    open_rpc,
    print_table,
    refused_code,
    watch_socket,
    watch_sse,
)
from tests.rpc import rpc
from tests.stack import Gateway, Stack

DRAIN_SECONDS = 2.0
# The bound: drain window, then the close answers and uvicorn's own shutdown.
EXIT_MARGIN = 15.0
READY_503_WITHIN = 0.5  # "answers /readyz 503 at once"
MAX_SHARE_PER_TENTH = 0.3

ENV = {
    **OPEN_ENV,
    "PUSHGATE_DRAIN_SECONDS": str(DRAIN_SECONDS),
    # A history long enough for every reconnect gap of the rolling restart.
    "PUSHGATE_NAMESPACES": json.dumps({"roll": {"publish": True, "history_size": 2000}}),
}


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    """A Redis of this module's own: nothing else's keys, nothing else's load."""
    server = RedisServer(quiet=True).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def stack(redis: RedisServer) -> Iterator[Stack]:
    with Stack(redis.url, gateways=0, workers=0, env=ENV) as running:
        yield running


async def _exit(gateway: Gateway, since: float) -> tuple[int, float]:
    code = await asyncio.to_thread(gateway.process.wait, DRAIN_SECONDS + EXIT_MARGIN)
    return code, time.monotonic() - since


async def _ready_status_after(
    gateway: Gateway, http: httpx.AsyncClient
) -> tuple[float, dict[str, Any]]:
    """Poll ``/readyz`` until it answers 503; returns when (seconds from now) and its body."""
    start = time.monotonic()
    while time.monotonic() - start < EXIT_MARGIN:
        response = await http.get(f"{gateway.http_url}/readyz")
        if response.status_code == 503:
            return time.monotonic() - start, response.json()
        await asyncio.sleep(0.01)
    raise AssertionError("/readyz never answered 503")


async def _open_clients(gateway: Gateway, http: httpx.AsyncClient) -> list[asyncio.Task[Closed]]:
    """150 subscribed ``/ws`` clients, 50 ``/ws/jobs`` watchers of 5 queued jobs, 10 SSE streams."""
    jobs = [
        (await http.post(f"{gateway.http_url}/jobs", json={"url": "http://example.invalid/"}))
        for _ in range(5)
    ]
    request_ids = [job.json()["request_id"] for job in jobs]
    sockets = await asyncio.gather(
        *(open_rpc(gateway.ws_url, f"roll:drain-{i % 10}") for i in range(150))
    )
    job_sockets = await asyncio.gather(
        *(open_job_socket(gateway.ws_url, request_ids[i % 5]) for i in range(50))
    )
    watchers = [asyncio.create_task(watch_socket("ws", s)) for s in sockets]
    watchers += [asyncio.create_task(watch_socket("ws/jobs", s)) for s in job_sockets]
    for i in range(10):
        opened = asyncio.Event()
        url = f"{gateway.http_url}/sse?channel=roll:drain-{i}"
        watchers.append(asyncio.create_task(watch_sse(http, url, opened)))
        async with asyncio.timeout(10):
            await opened.wait()
    return watchers


async def test_sigterm_drains_sockets_evenly_and_exits_0(stack: Stack) -> None:
    gateway = stack.start_drainable_gateway()
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(timeout=10, limits=limits) as http:
        watchers = await _open_clients(gateway, http)
        job_id = await http.post(f"{gateway.http_url}/jobs", json={"url": "http://x.invalid/"})
        signalled = time.monotonic()
        gateway.process.send_signal(signal.SIGTERM)
        ready_after, ready_body = await _ready_status_after(gateway, http)
        # Refused before any check: even a socket for a job that does not exist gets 1012.
        refused = [
            await refused_code(f"{gateway.ws_url}{path}") for path in ("/ws", "/ws/jobs/nojob")
        ]
        during = await http.get(f"{gateway.http_url}/jobs/{job_id.json()['request_id']}")
        closes = await asyncio.gather(*watchers)
        exit_code, exit_after = await _exit(gateway, signalled)
    stack.gateways.remove(gateway)

    moments = sorted(close.at - signalled for close in closes)
    buckets = histogram(moments, DRAIN_SECONDS)
    codes = {(c.kind, c.code) for c in closes}
    print(f"\ndrain of {len(closes)} sockets and streams over {DRAIN_SECONDS} s")
    print(f"  /readyz 503 after {ready_after * 1000:.0f} ms: {ready_body}")
    print(f"  new /ws, /ws/jobs during drain: close {refused}; GET /jobs: {during.status_code}")
    print(f"  first close {moments[0]:.3f} s, last {moments[-1]:.3f} s after SIGTERM; {codes}")
    print(f"  closes per tenth of the window: {buckets}")
    print(f"  exit code {exit_code} after {exit_after:.2f} s")

    assert ready_after < READY_503_WITHIN
    assert ready_body["error"]["code"] == "unavailable"
    assert "draining" in ready_body["error"]["message"]
    assert refused == [1012, 1012]
    assert during.status_code == 200
    assert codes == {("ws", 1012), ("ws/jobs", 1012), ("sse", None)}
    assert max(buckets) <= MAX_SHARE_PER_TENTH * len(closes), buckets
    assert moments[-1] < DRAIN_SECONDS + EXIT_MARGIN
    assert exit_code == 0


async def test_rolling_restart_under_load_loses_and_repeats_nothing(stack: Stack) -> None:
    gateways = [stack.start_drainable_gateway() for _ in range(3)]
    channels = ["roll:a", "roll:b", "roll:c"]
    fleet = Fleet([f"{g.ws_url}/ws" for g in gateways], clients=30)
    await fleet.subscribe(channels)
    publisher = Publisher([g.http_url for g in gateways], channels)
    stop = asyncio.Event()
    publishing = asyncio.create_task(publisher.run(stop, interval=0.02, limit=5000))
    restarts: list[list[object]] = []
    try:
        await asyncio.sleep(1.0)
        for index, gateway in enumerate(gateways):
            signalled = time.monotonic()
            gateway.process.send_signal(signal.SIGTERM)
            code, took = await _exit(gateway, signalled)
            stack.gateways.remove(gateway)
            again = await asyncio.to_thread(stack.start_drainable_gateway, None, gateway.port)
            restarts.append([index, gateway.port, code, f"{took:.2f}", again.process.pid])
            await asyncio.sleep(1.0)
        stop.set()
        await publishing
        await fleet.wait_for(publisher.published, timeout=20)
    finally:
        stop.set()
        await fleet.close()
        await asyncio.gather(publishing, return_exceptions=True)

    rows = fleet.report(publisher.published)
    print_table(
        "rolling restart: gateway, port, exit code, seconds from SIGTERM to exit, new pid",
        ["gateway", "port", "exit", "seconds", "pid"],
        restarts,
    )
    print(f"publish retries on another gateway: {publisher.retries}")
    print(f"resubscriptions per client: {sorted(fleet.resumed)}")
    print_table(
        "per channel, over every client",
        ["channel", "clients", "published", "received", "lost", "duplicated", "out of order"],
        rows,
    )
    assert [restart[2] for restart in restarts] == [0, 0, 0]
    assert not fleet.unrecovered
    # Every client was closed at least once and resumed every channel.
    assert min(fleet.resumed) >= len(channels)
    assert [row[4:] for row in rows] == [[0, 0, 0]] * len(channels)


async def test_plain_uvicorn_closes_every_socket_at_once(stack: Stack) -> None:
    """The baseline that README documents: under ``uvicorn gateway.app:app`` SIGTERM is
    uvicorn's. Every socket gets 1012 in the same instant, and the SSE streams are not ended
    (uvicorn waits for their clients to leave, here by their 3 s read timeout)."""
    gateway = stack.start_uvicorn_gateway(factory=False)
    async with httpx.AsyncClient(timeout=3) as http:
        watchers = await _open_clients(gateway, http)
        signalled = time.monotonic()
        gateway.process.send_signal(signal.SIGTERM)
        ended = await asyncio.gather(*watchers, return_exceptions=True)
        exit_code, exit_after = await _exit(gateway, signalled)
    stack.gateways.remove(gateway)

    closes = [c for c in ended if isinstance(c, Closed)]
    moments = sorted(c.at - signalled for c in closes)
    print(f"\nplain uvicorn, {len(closes)} sockets closed: {histogram(moments, DRAIN_SECONDS)}")
    print(f"  first close {moments[0]:.3f} s, last {moments[-1]:.3f} s after SIGTERM")
    print(f"  SSE streams: {[type(e).__name__ for e in ended if not isinstance(e, Closed)]}")
    print(f"  exit code {exit_code} after {exit_after:.2f} s")
    assert {(c.kind, c.code) for c in closes} == {("ws", 1012), ("ws/jobs", 1012)}
    assert len(closes) == 200
    assert all(isinstance(e, httpx.ReadTimeout) for e in ended[200:])
    assert exit_code == -signal.SIGTERM  # uvicorn re-raises the signal it caught


async def test_a_second_signal_stops_at_once(stack: Stack) -> None:
    window = 60.0
    gateway = stack.start_drainable_gateway({"PUSHGATE_DRAIN_SECONDS": str(window)})
    sockets = await asyncio.gather(*(open_rpc(gateway.ws_url, "roll:second") for _ in range(20)))
    watchers = [asyncio.create_task(watch_socket("ws", s)) for s in sockets]
    signalled = time.monotonic()
    gateway.process.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.5)
    gateway.process.send_signal(signal.SIGINT)
    exit_code, exit_after = await _exit(gateway, signalled)  # waits far less than the window
    stack.gateways.remove(gateway)
    closes = await asyncio.gather(*watchers)
    print(f"\nsecond signal after 0.5 s of a {window:.0f} s drain: exit {exit_code} after "
          f"{exit_after:.2f} s; close codes {({c.code for c in closes})}")  # fmt: skip
    assert exit_code == 0
    assert {c.code for c in closes} == {1012}


async def test_a_client_that_stops_reading_does_not_hold_the_exit(stack: Stack) -> None:
    gateway = stack.start_drainable_gateway({"PUSHGATE_DRAIN_SECONDS": "1"})
    async with rpc(gateway.ws_url, receive_buffer=4096) as stalled:
        await stalled.result("connect", {})
        await stalled.result("subscribe", {"channel": "roll:stall"})
        async with httpx.AsyncClient(timeout=10) as http:
            url = f"{gateway.http_url}/channels/roll:stall/publications"
            # ~12 MB the client never reads, over the kernel's 4 MB send buffer: sends block.
            for _ in range(200):
                assert (await http.post(url, json={"data": "x" * 60_000})).status_code == 200
        signalled = time.monotonic()
        gateway.process.send_signal(signal.SIGTERM)
        exit_code, exit_after = await _exit(gateway, signalled)
        stalled.socket.transport.abort()  # it would wait out its close timeout on a dead peer
    stack.gateways.remove(gateway)
    print(f"\nstalled client, 1 s drain: exit {exit_code} after {exit_after:.2f} s")
    assert exit_code == 0
