"""A gateway SIGKILLed under its clients: they reconnect to another replica (the Python client
rotating URLs), resume with ``since``, and lose nothing; 2,000 of them at once, too."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from pushgate.cli.redis_server import RedisServer
from pushgate.client import PushgateClient
from tests.faults.gateway_faults import (
    Publisher,
    Verdict,
    Watcher,
    check,
    gateways,
    raise_fd_limit,
    report,
    rotating,
    settle,
    stop_watchers,
    watch,
)

WAIT = 60.0


async def open_watchers(
    urls: list[str], channels: list[str], count: int, in_flight: int = 100
) -> tuple[list[PushgateClient], list[Watcher]]:
    """``count`` clients, each subscribed to one of ``channels``, first on ``urls[0]``."""
    gate = asyncio.Semaphore(in_flight)
    watchers = [Watcher(channels[n % len(channels)]) for n in range(count)]
    clients = [
        PushgateClient(rotating(urls), backoff_min=0.1, backoff_max=2.0, on_recovery=w.on_recovery)
        for w in watchers
    ]

    async def open_one(client: PushgateClient, watcher: Watcher) -> None:
        async with gate:
            await client.connect()
            await watch(client, watcher)

    await asyncio.gather(*(open_one(c, w) for c, w in zip(clients, watchers, strict=True)))
    return clients, watchers


async def all_resumed(watchers: list[Watcher]) -> float:
    """Seconds until every watcher's resubscription was answered (bounded)."""
    started = time.monotonic()
    async with asyncio.timeout(WAIT):
        while not all(w.recoveries for w in watchers):
            await asyncio.sleep(0.05)
    return time.monotonic() - started


async def kill_and_resume(
    redis_url: str, count: int, channels: int, rate: float
) -> tuple[float, Verdict, list[Watcher], Publisher]:
    names = [f"chat:failover-{uuid.uuid4().hex[:8]}-{n}" for n in range(channels)]
    with gateways(redis_url, 2) as stack:
        doomed, spare = stack.gateways
        urls = [f"{doomed.ws_url}/ws", f"{spare.ws_url}/ws"]
        clients, watchers = await open_watchers(urls, names, count)
        publisher = Publisher(redis_url, names, rate=rate).start()
        await publisher.wait_acked(2 * channels)
        doomed.process.kill()  # SIGKILL: every socket dies without a close frame
        doomed.process.wait()
        absorbed = await all_resumed(watchers)
        await publisher.wait_acked(len(publisher.acked) + 2 * channels)
        await publisher.stop()
        await settle(watchers, publisher)
        await stop_watchers(watchers)
        await asyncio.gather(*(client.close() for client in clients))
    total = Verdict()
    for watcher in watchers:
        total += check(watcher, publisher.of(watcher.channel))
    return absorbed, total, watchers, publisher


def figures(absorbed: float, total: Verdict, watchers: list[Watcher]) -> list[tuple[str, object]]:
    recovered = sum(all(r.recovered for r in w.recoveries) for w in watchers)
    return [
        ("time to absorb: kill -> every client resubscribed (s)", round(absorbed, 3)),
        ("resumes recovered: true", f"{recovered} of {len(watchers)}"),
        ("lost / duplicated / out of order", (total.lost, total.duplicated, total.disordered)),
    ]


async def test_gateway_sigkill_clients_resume_on_another_replica(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    absorbed, total, watchers, publisher = await kill_and_resume(
        redis_server.url, count=20, channels=4, rate=50
    )
    report(
        request,
        "gateway SIGKILL: 20 clients rotate to the other replica, publisher at 50/s",
        [*figures(absorbed, total, watchers), ("publications acked", len(publisher.acked))],
    )
    assert (total.lost, total.duplicated, total.disordered, total.told) == (0, 0, 0, 0)


STORM = 2_000


async def test_reconnect_storm_of_2000_clients(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    raise_fd_limit(4 * STORM + 1024)  # this process's client sockets, and the gateways'
    absorbed, total, watchers, publisher = await kill_and_resume(
        redis_server.url, count=STORM, channels=20, rate=20
    )
    report(
        request,
        f"reconnect storm: {STORM:,} clients on 20 channels move to the other gateway "
        "after a SIGKILL, publisher at 20/s",
        [*figures(absorbed, total, watchers), ("publications acked", len(publisher.acked))],
    )
    assert (total.lost, total.duplicated, total.disordered, total.told) == (0, 0, 0, 0)
