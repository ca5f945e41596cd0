"""docker-compose.yml's topology with real processes: nginx (the compose file's own config) in
front of three `pushgate gateway` processes, two `python -m worker`, two broker shards and the
queue Redis. Python clients rotate over the gateways (and some come through nginx), a publisher
posts through nginx, jobs are submitted and followed through nginx, and one gateway is restarted
in the middle: every client gets every publication of its channel exactly once and in order,
every job ends with exactly one terminal event."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
import pytest
import redis

from pushgate.broker.keys import history_key
from pushgate.cli.redis_server import RedisServer
from pushgate.client import PushgateClient
from tests.faults.gateway_faults import (
    FAULT_ENV,
    Acked,
    Verdict,
    Watcher,
    check,
    report,
    rotating,
    stop_watchers,
    watch,
)
from tests.nginx import nginx_in_front
from tests.origin import Origin
from tests.stack import MODULE_WORKER, Stack
from tests.wsclient import read_all

CHANNELS = 12
PER_CHANNEL = 30
JOBS = 6
WAIT = 60.0


@contextmanager
def compose_topology() -> Iterator[tuple[Stack, list[RedisServer], str]]:
    """The stack, its two shards, and nginx's URL."""
    with ExitStack() as stack_of:
        queue, *shards = (stack_of.enter_context(RedisServer()) for _ in range(3))
        env = {
            **FAULT_ENV,
            "PUSHGATE_BROKER_URLS": ",".join(shard.url for shard in shards),
            "PUSHGATE_ALLOW_PRIVATE_ADDRESSES": "true",
            "PUSHGATE_DRAIN_SECONDS": "1",
        }
        stack = stack_of.enter_context(
            Stack(queue.url, gateways=0, workers=2, env=env, worker_argv=MODULE_WORKER)
        )
        for _ in range(3):
            stack.start_drainable_gateway()
        servers = [f"127.0.0.1:{gateway.port}" for gateway in stack.gateways]
        yield stack, shards, stack_of.enter_context(nginx_in_front(servers))


class HttpPublisher:
    """Publishes ``{"n": i}`` round-robin over ``channels`` through the load balancer's publish
    API; a failed attempt (a gateway restarting under nginx) is retried with the same
    Idempotency-Key, so each ``n`` is published once."""

    def __init__(self, base_url: str, channels: list[str], per_channel: int) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=5)
        self._channels = channels
        self._count = per_channel * len(channels)
        self.acked: list[Acked] = []
        self.retries = 0

    async def run(self) -> None:
        for n in range(self._count):
            channel = self._channels[n % len(self._channels)]
            answer = await self._publish(channel, n)
            self.acked.append(
                Acked(channel, answer["epoch"], answer["offset"], n, time.monotonic())
            )
            await asyncio.sleep(0.005)
        await self._http.aclose()

    async def _publish(self, channel: str, n: int) -> dict[str, Any]:
        headers = {"Idempotency-Key": f"topology-{n}"}
        async with asyncio.timeout(WAIT):
            while True:
                try:
                    response = await self._http.post(
                        f"/channels/{channel}/publications",
                        json={"data": {"n": n}},
                        headers=headers,
                    )
                except httpx.TransportError:
                    response = None
                if response is not None and response.status_code == 200:
                    answer: dict[str, Any] = response.json()
                    return answer
                self.retries += 1
                await asyncio.sleep(0.1)

    def of(self, channel: str) -> list[Acked]:
        return [a for a in self.acked if a.channel == channel]


async def _job_outcome(lb: str, origin: Origin) -> list[str]:
    """Submit a job through nginx and follow it there to its end; its event types."""
    body = {"url": origin.url("/pages/links.html"), "request_id": f"topo-{uuid.uuid4().hex}"}
    async with httpx.AsyncClient(base_url=lb, timeout=10) as http:
        response = await http.post("/jobs", json=body)
    assert response.status_code == 202, response.text
    transcript = await read_all(f"{lb.replace('http', 'ws', 1)}/ws/jobs/{body['request_id']}")
    assert transcript.close_code == 1000
    return transcript.types


def _shard_holding(shards: list[RedisServer], channel: str) -> int:
    """Which shard holds ``channel``'s history (asked of the shards themselves)."""
    holders = []
    for index, shard in enumerate(shards):
        with redis.Redis.from_url(shard.url) as client:
            if client.exists(history_key(channel)):
                holders.append(index)
    (holder,) = holders
    return holder


async def test_three_gateways_behind_nginx_two_shards_two_workers(
    origin: Origin, request: pytest.FixtureRequest
) -> None:
    with compose_topology() as (stack, shards, lb):
        names = [f"chat:topology-{uuid.uuid4().hex[:8]}-{n}" for n in range(CHANNELS)]
        direct = [f"{gateway.ws_url}/ws" for gateway in stack.gateways]
        balanced = [f"{lb.replace('http', 'ws', 1)}/ws"]
        watchers = [Watcher(names[n % CHANNELS]) for n in range(2 * CHANNELS)]
        clients = [
            PushgateClient(
                rotating(direct if n % 2 == 0 else balanced),
                backoff_min=0.05,
                backoff_max=0.5,
                on_recovery=watcher.on_recovery,
            )
            for n, watcher in enumerate(watchers)
        ]
        for client, watcher in zip(clients, watchers, strict=True):
            await client.connect()
            await watch(client, watcher)

        publisher = HttpPublisher(lb, names, PER_CHANNEL)
        publishing = asyncio.create_task(publisher.run())
        jobs = asyncio.gather(*(_job_outcome(lb, origin) for _ in range(JOBS)))
        async with asyncio.timeout(WAIT):
            while len(publisher.acked) < CHANNELS * PER_CHANNEL // 3:
                await asyncio.sleep(0.01)
        restarted = stack.gateways[0]
        stack.stop_gateway(restarted)  # SIGTERM: drains its clients over 1 s, exits
        stack.start_drainable_gateway(port=restarted.port)
        await publishing
        outcomes = await jobs

        async with asyncio.timeout(WAIT):
            while any(len(w.got) < PER_CHANNEL for w in watchers):
                await asyncio.sleep(0.05)
        await stop_watchers(watchers)
        await asyncio.gather(*(client.close() for client in clients))
        spread = [_shard_holding(shards, name) for name in names]

    total = Verdict()
    for watcher in watchers:
        total += check(watcher, publisher.of(watcher.channel))
    terminal = [types.count("result") + types.count("failed") for types in outcomes]
    report(
        request,
        "compose topology: nginx, 3 gateways (one restarted), 2 shards, 2 workers",
        [
            ("channels on shard 0 / shard 1", (spread.count(0), spread.count(1))),
            ("publications (through nginx), retried", (len(publisher.acked), publisher.retries)),
            ("clients resubscribed after the restart", sum(bool(w.recoveries) for w in watchers)),
            (
                "lost / duplicated / out of order / told",
                (total.lost, total.duplicated, total.disordered, total.told),
            ),
            ("jobs: terminal events each", terminal),
        ],
    )
    assert spread.count(0) and spread.count(1)
    assert (total.lost, total.duplicated, total.disordered, total.told) == (0, 0, 0, 0)
    assert all(types[0] == "queued" and types[-1] == "result" for types in outcomes), outcomes
    assert terminal == [1] * JOBS
