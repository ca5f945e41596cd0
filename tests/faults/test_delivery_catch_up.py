"""The gateway's pub/sub connection (and its command connections) killed again and again while a
publisher runs, so that reconnects land in the middle of catch-ups and catch-up reads fail: every
subscriber still gets each publication once and in order, or is told it missed some. And a hub
whose history reads keep failing tells its subscribers instead of leaving a hole."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid

import pytest
import redis.asyncio as aioredis

from pushgate.broker.keys import history_key, meta_key
from pushgate.broker.store import Backend, HistoryPolicy
from pushgate.cli.processes import free_port
from pushgate.cli.redis_server import RedisServer
from pushgate.client import PushgateClient
from pushgate.core.wire import Publication
from tests.faults.gateway_faults import (
    POLICY,
    Publisher,
    Verdict,
    Watcher,
    check,
    gateways,
    killable_redis,
    report,
    running_hub,
    settle,
    stop_watchers,
    until,
    watch,
)

KILLS = 25
WAIT = 30.0


async def test_pubsub_killed_during_catch_ups_loses_nothing_silently(
    request: pytest.FixtureRequest,
) -> None:
    channels = [f"chat:catchup-{uuid.uuid4().hex[:8]}-{n}" for n in range(3)]
    rng = random.Random(8)
    with killable_redis() as redis, gateways(redis.url, 2) as stack:
        urls = [f"{g.ws_url}/ws" for g in stack.gateways]
        watchers = [Watcher(c) for c in channels for _ in urls]
        clients = []
        for n, watcher in enumerate(watchers):
            client = PushgateClient(urls[n % 2], on_recovery=watcher.on_recovery)
            await client.connect()
            clients.append(client)
            await watch(client, watcher)
        publisher = Publisher(redis.url, channels, rate=100).start()
        killer = aioredis.Redis.from_url(redis.url)
        killed = {"pubsub": 0, "normal": 0}
        for round_ in range(KILLS):
            killed["pubsub"] += await killer.client_kill_filter(_type="pubsub")
            if round_ % 3 == 2:  # the gateways' command connections: catch-up reads fail
                killed["normal"] += await killer.client_kill_filter(_type="normal", skipme=True)
            await asyncio.sleep(rng.uniform(0.01, 0.25))
        await killer.aclose()
        await publisher.stop()
        await settle(watchers, publisher)
        await stop_watchers(watchers)
        for client in clients:
            await client.close()

    total = Verdict()
    for watcher in watchers:
        total += check(watcher, publisher.of(watcher.channel))
    report(
        request,
        f"pub/sub connections killed {KILLS} times during catch-ups, publisher at 100/s, "
        f"{len(watchers)} clients on 2 gateways",
        [
            ("connections killed (pubsub, normal)", (killed["pubsub"], killed["normal"])),
            ("publications acknowledged", len(publisher.acked)),
            ("lost / duplicated / out of order", (total.lost, total.duplicated, total.disordered)),
            ("recovered: false answers", total.told),
        ],
    )
    assert (total.lost, total.duplicated, total.disordered) == (0, 0, 0)


class Recorder:
    """A hub subscriber that notes what it is handed and whether it was told it lost some."""

    def __init__(self) -> None:
        self.offsets: list[str] = []
        self.lost_at: float | None = None

    def deliver(self, publication: Publication) -> None:
        self.offsets.append(publication.offset)

    def lost(self) -> None:
        self.lost_at = time.monotonic()


async def test_a_catch_up_that_cannot_read_the_history_tells_its_subscribers(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    """The hub's pub/sub connection is on a live Redis, its history reads go to a closed port:
    after a reconnect it cannot catch up, and must say so rather than go on with a hole."""
    channel = f"hubfault:{uuid.uuid4().hex}"
    live = aioredis.Redis.from_url(redis_server.url)
    dead = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    publisher = Backend(live, jobs=POLICY)
    recorder = Recorder()
    try:
        async with running_hub(redis_server.url, Backend(dead, jobs=POLICY)) as hub:
            await hub.subscribe(channel, recorder)
            first, _ = await publisher.publish(channel, 1, POLICY)
            await until(lambda: recorder.offsets)
            await live.client_kill_filter(_type="pubsub")
            missed, _ = await publisher.publish(channel, 2, POLICY)  # only the history has it
            killed_at = time.monotonic()
            await until(lambda: hub.connected)
            later, _ = await publisher.publish(channel, 3, POLICY)
            with contextlib.suppress(TimeoutError):
                await until(lambda: recorder.lost_at is not None, 10.0)
    finally:
        await live.aclose()
        await dead.aclose()
    hole = missed not in recorder.offsets and later in recorder.offsets
    report(
        request,
        "catch-up whose history reads fail (history on a closed port)",
        [
            ("offsets handed to the subscriber", len(recorder.offsets)),
            ("handed on past a hole, untold", hole and recorder.lost_at is None),
            ("told after the kill (s)",
             None if recorder.lost_at is None else round(recorder.lost_at - killed_at, 3)),
        ],
    )  # fmt: skip
    assert recorder.offsets[0] == first
    assert recorder.lost_at is not None
    assert missed not in recorder.offsets
    assert later not in recorder.offsets  # nothing after a hole: it was told instead


async def test_a_catch_up_past_the_trimmed_history_tells_its_subscribers(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    """Publications that reached a capped history but not the hub, so many that the cap dropped
    some: the position check finds them, the catch-up cannot cover them, the subscriber is told."""
    channel = f"hubtrim:{uuid.uuid4().hex}"
    client = aioredis.Redis.from_url(redis_server.url)
    backend = Backend(client, jobs=POLICY)
    recorder = Recorder()
    try:
        async with running_hub(redis_server.url, backend, position_check=0.2) as hub:
            await hub.subscribe(channel, recorder)
            first, _ = await backend.publish(channel, 0, HistoryPolicy(size=3, ttl=60))
            await until(lambda: recorder.offsets)
            # Five into the history (capped at 3), never published, as the publish script
            # would leave them: the oldest dropped, the trimmed mark on the newest dropped.
            ids = [first]
            for n in range(1, 6):
                entry = await client.xadd(
                    history_key(channel), {"d": str(n)}, maxlen=3, approximate=False
                )
                ids.append(entry.decode())
            await client.hset(meta_key(channel), "trimmed", ids[2])
            silent_at = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await until(lambda: recorder.lost_at is not None, 10.0)
    finally:
        await client.aclose()
    report(
        request,
        "publications the hub never got, partly trimmed away (position check every 0.2 s)",
        [
            ("offsets handed to the subscriber", len(recorder.offsets)),
            ("told after (s)",
             None if recorder.lost_at is None else round(recorder.lost_at - silent_at, 3)),
        ],
    )  # fmt: skip
    assert recorder.offsets == [first]
    assert recorder.lost_at is not None
