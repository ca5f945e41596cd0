"""Redis SIGKILLed and started again while clients stay connected and a publisher runs.

Without persistence the history is gone: every client connected throughout is told
``recovered: false`` at once (it does not wait for the next publication). With an append-only
file nothing is lost: nobody is told anything, and a client that was away resumes with
``recovered: true`` and exactly what it missed.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from pushgate.client import Position, PushgateClient
from tests.faults.gateway_faults import (
    Publisher,
    Verdict,
    Watcher,
    check,
    gateways,
    killable_redis,
    report,
    settle,
    stop_watchers,
    watch,
)

CHANNELS = 3
DOWN = 1.0  # seconds Redis stays down
WAIT = 30.0


@pytest.mark.parametrize("appendonly", [False, True], ids=["no-persistence", "aof"])
async def test_redis_restart_is_recovered_or_told(
    appendonly: bool, request: pytest.FixtureRequest
) -> None:
    channels = [f"chat:restart-{uuid.uuid4().hex[:8]}-{n}" for n in range(CHANNELS)]
    with killable_redis(appendonly=appendonly) as redis, gateways(redis.url, 2) as stack:
        urls = [f"{g.ws_url}/ws" for g in stack.gateways]
        watchers = [Watcher(c) for c in channels for _ in urls]
        clients = [
            PushgateClient(
                urls[n % 2], backoff_min=0.05, backoff_max=0.5, on_recovery=w.on_recovery
            )
            for n, w in enumerate(watchers)
        ]
        away = Watcher(channels[0])  # leaves before the kill, resumes after the restart
        for client, watcher in zip(clients, watchers, strict=True):
            await client.connect()
            await watch(client, watcher)
        async with PushgateClient(urls[0]) as leaving:
            await watch(leaving, away)
            publisher = Publisher(redis.url, channels, rate=30).start()
            await publisher.wait_acked(30)
            await settle([away], publisher)
        await stop_watchers([away])
        resume_from = Position(away.got[-1][0], away.got[-1][1])

        redis.kill()
        await asyncio.sleep(DOWN)
        redis.start()
        back = time.monotonic()
        await publisher.wait_acked(len(publisher.acked) + 30)
        async with PushgateClient(urls[1], on_recovery=away.on_recovery) as returning:
            await watch(returning, away, since=resume_from)
            await publisher.wait_acked(len(publisher.acked) + 15)
            await publisher.stop()
            await settle([*watchers, away], publisher)
            await stop_watchers([away])
        await stop_watchers(watchers)
        for client in clients:
            await client.close()

    total = Verdict()
    for watcher in watchers:
        total += check(watcher, publisher.of(watcher.channel))
    told_after = [r.at - back for w in watchers for r in w.unrecovered]
    away_verdict = check(away, publisher.of(away.channel), since=None)
    report(
        request,
        f"Redis SIGKILL + restart {'with AOF' if appendonly else 'without persistence'}: "
        f"{len(watchers)} clients on 2 gateways, publisher at 30/s",
        [
            ("lost / duplicated / out of order", (total.lost, total.duplicated, total.disordered)),
            ("clients told recovered: false", f"{sum(bool(w.unrecovered) for w in watchers)} "
             f"of {len(watchers)}"),
            ("told after Redis was back, max (s)",
             round(max(told_after), 3) if told_after else None),
            ("client away during the outage: resume recovered", away.recoveries[-1].recovered),
            ("client away: lost / duplicated", (away_verdict.lost, away_verdict.duplicated)),
            ("publications acked (failed tries)", (len(publisher.acked), publisher.failures)),
        ],
    )  # fmt: skip
    assert (total.lost, total.duplicated, total.disordered) == (0, 0, 0)
    assert (away_verdict.lost, away_verdict.duplicated) == (0, 0)
    if appendonly:
        assert total.told == 0
        assert away.recoveries[-1].recovered is True
    else:
        assert all(w.unrecovered for w in watchers)
        assert away.recoveries[-1].recovered is False
