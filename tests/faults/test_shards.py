"""The broker plane on three standalone Redis shards (``PUSHGATE_BROKER_URLS``), the queue on a
fourth, two ``pushgate gateway`` replicas and two ``python -m worker`` workers.

Every delivery guarantee holds across shards and gateways; SIGKILLing one shard disturbs only
its channels (their subscribers are told, everyone else sees no gap, ``/readyz`` names it), and
its channels recover when it is back; a channel moved by resharding resumes ``recovered: false``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import astuple, dataclass
from typing import Any

import httpx
import pytest
import redis

from pushgate.broker.keys import history_key
from pushgate.client import Position, PushgateClient
from pushgate.core.sharding import shard_of
from pushgate.core.wire import job_channel
from tests.faults.gateway_faults import (
    KillableRedis,
    Publisher,
    Verdict,
    Watcher,
    check,
    killable_redis,
    killable_shards,
    report,
    settle,
    sharded_stack,
    stop_watchers,
    watch,
)
from tests.integration.test_metrics import scrape
from tests.origin import Origin
from tests.rpc import rpc
from tests.stack import Stack
from tests.wsclient import read_all

SHARDS = 3
PER_SHARD = 3  # channels of the stream on each shard
KILLED = 1  # the shard SIGKILLed
WAIT = 30.0
TERMINAL = ("result", "failed")


def placed(
    prefix: str,
    want: dict[int, int],
    shards: int = SHARDS,
    channel: Callable[[str], str] = str,
) -> list[str]:
    """Names ``prefix-<n>``: ``want[i]`` of them whose ``channel(name)`` is on shard ``i`` (of
    ``shards``), in shard order."""
    found: dict[int, list[str]] = {index: [] for index in want}
    for n in range(100 * sum(want.values())):  # bounded: each shard gets 1/shards of the names
        name = f"{prefix}-{n}"
        shard = shard_of(channel(name), shards)
        if shard in found and len(found[shard]) < want[shard]:
            found[shard].append(name)
        if all(len(found[index]) == count for index, count in want.items()):
            return [name for index in sorted(want) for name in found[index]]
    raise AssertionError(f"no names for {want}")


def stream_channels() -> list[str]:
    return placed(f"chat:shards-{uuid.uuid4().hex[:8]}", dict.fromkeys(range(SHARDS), PER_SHARD))


def request_id_on(shard: int) -> str:
    """A request id whose job channel (and so its record) lives on ``shard``."""
    return placed(f"shards-{uuid.uuid4().hex[:8]}", {shard: 1}, channel=job_channel)[0]


@dataclass
class Sharded:
    queue: KillableRedis
    shards: list[KillableRedis]
    stack: Stack

    @property
    def urls(self) -> list[str]:
        return [f"{gateway.ws_url}/ws" for gateway in self.stack.gateways]

    def holders(self, channel: str) -> list[int]:
        """The shards whose Redis holds ``channel``'s history."""
        held = []
        for index, shard in enumerate(self.shards):
            client = redis.Redis.from_url(shard.url, socket_timeout=1)
            try:
                if client.exists(history_key(channel)):
                    held.append(index)
            finally:
                client.close()
        return held


@pytest.fixture
def sharded(origin: Origin) -> Iterator[Sharded]:
    """Three broker shards and the queue's Redis, two gateways and two workers."""
    with (
        killable_redis() as queue,
        killable_shards(SHARDS) as shards,
        sharded_stack(queue.url, shards, gateways=2, workers=2) as stack,
    ):
        yield Sharded(queue, shards, stack)


async def open_watchers(
    urls: list[str], channels: list[str]
) -> tuple[list[PushgateClient], list[Watcher]]:
    """A client per channel on each gateway, subscribed from now on."""
    watchers = [Watcher(channel) for channel in channels for _ in urls]
    clients = []
    for n, watcher in enumerate(watchers):
        client = PushgateClient(
            urls[n % len(urls)], backoff_min=0.05, backoff_max=0.5, on_recovery=watcher.on_recovery
        )
        await client.connect()
        await watch(client, watcher)
        clients.append(client)
    return clients, watchers


async def close_all(clients: list[PushgateClient], watchers: list[Watcher]) -> None:
    await stop_watchers(watchers)
    for client in clients:
        await client.close()


async def job_seen_on_both(urls: list[str], url: str, request_id: str) -> list[list[str]]:
    """Submit a job on the first gateway (subscribed), watch it from its start on the second;
    the event types each saw, once the terminal one is in."""
    async with PushgateClient(urls[0]) as submitter, PushgateClient(urls[1]) as other:
        await submitter.submit(url, request_id, subscribe=True)
        channel = job_channel(request_id)
        subscriptions = [
            submitter.subscription(channel),
            await other.subscribe(channel, since=Position("", "")),
        ]

        async def types(subscription: Any) -> list[str]:
            seen: list[str] = []
            async with asyncio.timeout(WAIT):
                async for publication in subscription:
                    seen.append(publication.data["type"])
                    if seen[-1] in TERMINAL:
                        return seen
            return seen

        return list(await asyncio.gather(*(types(s) for s in subscriptions)))


def verdict(watchers: list[Watcher], publisher: Publisher) -> Verdict:
    total = Verdict()
    for watcher in watchers:
        total += check(watcher, publisher.of(watcher.channel))
    return total


async def test_every_guarantee_holds_across_shards_and_gateways(
    sharded: Sharded, origin: Origin, request: pytest.FixtureRequest
) -> None:
    channels = stream_channels()
    urls = sharded.urls
    clients, watchers = await open_watchers(urls, channels)
    publisher = Publisher([s.url for s in sharded.shards], channels, rate=60).start()
    await publisher.wait_acked(90)
    jobs = [request_id_on(shard) for shard in range(SHARDS)]
    page = origin.url("/pages/links.html")
    seen = await asyncio.gather(*(job_seen_on_both(urls, page, rid) for rid in jobs))
    await publisher.wait_acked(len(publisher.acked) + 60)
    await publisher.stop()
    settled = await settle(watchers, publisher)
    await close_all(clients, watchers)

    total = verdict(watchers, publisher)
    holders = {channel: sharded.holders(channel) for channel in channels}
    report(
        request,
        f"{SHARDS} broker shards, 2 gateways, 2 workers: {len(watchers)} clients on "
        f"{len(channels)} channels, publisher at 60/s, {len(jobs)} jobs",
        [
            ("lost / duplicated / out of order / told", astuple(total)),
            ("channels per shard", [sum(h == [i] for h in holders.values()) for i in range(3)]),
            ("job events seen (submitter, other gateway)", seen[0]),
            ("publications acked", len(publisher.acked)),
        ],
    )  # fmt: skip
    assert settled
    assert (total.lost, total.duplicated, total.disordered, total.told) == (0, 0, 0, 0)
    for channel, held in holders.items():
        assert held == [shard_of(channel, SHARDS)]  # on its own shard, and only there
    assert {shard_of(channel, SHARDS) for channel in channels} == set(range(SHARDS))
    for job_types in seen:
        assert job_types == [["queued", "started", "result"]] * 2
    for request_id in jobs:  # the job's record and history on the shard of its channel
        channel = job_channel(request_id)
        assert sharded.holders(channel) == [shard_of(channel, SHARDS)]


def outage_rows(
    what: str, undisturbed: Verdict, disturbed: Verdict, on_killed: list[Watcher]
) -> list[tuple[str, object]]:
    """The figures of a killed shard (or master, ``what``): its clients' and everyone else's."""
    told = f"{sum(bool(w.unrecovered) for w in on_killed)} of {len(on_killed)}"
    return [
        (f"other {what}s: lost / duplicated / out of order / told", astuple(undisturbed)),
        (f"killed {what}: lost / duplicated / out of order",
         (disturbed.lost, disturbed.duplicated, disturbed.disordered)),
        (f"killed {what}: clients told recovered: false", told),
    ]  # fmt: skip


async def readiness(http: httpx.AsyncClient, base: str) -> tuple[int, dict[str, Any]]:
    response = await http.get(base + "/readyz")
    return response.status_code, response.json()


def reconnects(base: str) -> dict[str, float]:
    """``pushgate_pubsub_reconnects_total`` by shard label."""
    return {
        dict(labels)["shard"]: value
        for (name, labels), value in scrape(base + "/metrics").items()
        if name == "pushgate_pubsub_reconnects_total"
    }


async def test_a_shard_killed_disturbs_only_its_channels_and_they_recover(
    sharded: Sharded, origin: Origin, request: pytest.FixtureRequest
) -> None:
    channels = stream_channels()
    urls = sharded.urls
    bases = [gateway.http_url for gateway in sharded.stack.gateways]
    clients, watchers = await open_watchers(urls, channels)
    publisher = Publisher([s.url for s in sharded.shards], channels, rate=60).start()
    await publisher.wait_acked(90)
    fresh = placed(f"chat:fresh-{uuid.uuid4().hex[:8]}", {0: 1, KILLED: 1})
    page = origin.url("/pages/links.html")

    sharded.shards[KILLED].kill()
    killed_at = time.monotonic()
    async with httpx.AsyncClient(timeout=5) as http:
        answers: list[tuple[int, dict[str, Any]]] = []

        async def all_unready() -> bool:
            answers[:] = [await readiness(http, base) for base in bases]
            return all(status == 503 for status, _ in answers)

        deadline = time.monotonic() + WAIT
        while not await all_unready():
            assert time.monotonic() < deadline, answers
            await asyncio.sleep(0.05)
        unready_after = time.monotonic() - killed_at
        # While it is down: a new subscription to its channels is refused at once, to another
        # shard's served; a job on another shard runs to its end, one on it cannot be created.
        async with rpc(sharded.stack.gateways[0].ws_url) as raw:
            refused = await raw.call("subscribe", {"channel": fresh[1]})
            served = await raw.call("subscribe", {"channel": fresh[0]})
        other_shard_job = request_id_on(0)
        job_during = await job_seen_on_both(urls, page, other_shard_job)
        on_killed = request_id_on(KILLED)
        refused_job = await http.post(
            bases[1] + "/jobs", json={"url": page, "request_id": on_killed}
        )
        jobs_url = f"{sharded.stack.gateways[1].ws_url}/ws/jobs/"
        job_sockets = [await read_all(jobs_url + rid) for rid in (on_killed, other_shard_job)]
        await publisher.wait_acked(len(publisher.acked) + 40)

        sharded.shards[KILLED].start()  # same port, nothing kept
        back_at = time.monotonic()
        deadline = time.monotonic() + WAIT
        while [(await readiness(http, base))[0] for base in bases] != [200, 200]:
            assert time.monotonic() < deadline, "the gateways never became ready again"
            await asyncio.sleep(0.05)
        ready_after = time.monotonic() - back_at
    await publisher.wait_acked(len(publisher.acked) + 60)
    await publisher.stop()
    settled = await settle(watchers, publisher)
    await close_all(clients, watchers)

    on_killed_shard = [w for w in watchers if shard_of(w.channel, SHARDS) == KILLED]
    elsewhere = [w for w in watchers if shard_of(w.channel, SHARDS) != KILLED]
    disturbed, undisturbed = verdict(on_killed_shard, publisher), verdict(elsewhere, publisher)
    counted = [reconnects(base) for base in bases]
    report(
        request,
        f"broker shard {KILLED} of {SHARDS} SIGKILLed and restarted (no persistence): "
        f"{len(watchers)} clients on 2 gateways, publisher at 60/s",
        [
            *outage_rows("shard", undisturbed, disturbed, on_killed_shard),
            ("/readyz 503 on both gateways after (s)", round(unready_after, 3)),
            ("/readyz 200 on both after the restart (s)", round(ready_after, 3)),
            ("/readyz body while down", answers[0][1]),
            ("subscribe: down shard / another", (refused.get("error"), "result" in served)),
            ("job on another shard during the outage", job_during[0]),
            ("POST /jobs on the down shard", refused_job.status_code),
            ("/ws/jobs close: down shard / another", [t.close_code for t in job_sockets]),
            ("pub/sub reconnects by shard, per gateway", counted),
            ("publications acked (failed tries)", (len(publisher.acked), publisher.failures)),
        ],
    )  # fmt: skip
    assert settled
    assert (undisturbed.lost, undisturbed.duplicated, undisturbed.disordered) == (0, 0, 0)
    assert undisturbed.told == 0  # nobody on another shard noticed anything
    assert (disturbed.lost, disturbed.duplicated, disturbed.disordered) == (0, 0, 0)
    assert all(w.unrecovered for w in on_killed_shard)  # the killed Redis kept nothing: told
    for _status, body in answers:
        assert [(s["index"], s["up"]) for s in body["shards"]] == [(0, True), (1, False), (2, True)]
        assert f"shards down: {KILLED} (redis://127.0.0.1:" in body["error"]["message"]
    assert refused["error"]["code"] == -32013
    assert "result" in served
    assert job_during == [["queued", "started", "result"]] * 2
    assert refused_job.status_code == 503
    assert [t.close_code for t in job_sockets] == [1013, 1000]
    assert job_sockets[1].types == ["queued", "started", "result"]
    for by_shard in counted:
        assert by_shard == {str(KILLED): 1.0}


async def test_a_channel_moved_by_resharding_resumes_unrecovered(
    request: pytest.FixtureRequest,
) -> None:
    prefix = f"chat:reshard-{uuid.uuid4().hex[:8]}"
    # From two shards to three: a channel stays where it was, or moves to the new shard.
    stays = placed(prefix + "-stays", {0: 1, 1: 1})
    moved = placed(prefix + "-moves", {2: 2})
    assert all(shard_of(channel, 2) == shard_of(channel, 3) for channel in stays)
    channels = [*stays, *moved]
    with (
        killable_redis() as queue,
        killable_shards(3) as shards,
        sharded_stack(queue.url, shards[:2], gateways=1, workers=0) as stack,
    ):
        async with PushgateClient(f"{stack.gateways[0].ws_url}/ws") as before:
            positions = {}
            for channel in channels:
                for n in range(3):
                    answer = await before.publish(channel, {"n": n})
                positions[channel] = Position(answer["epoch"], answer["offset"])
        stack.stop_gateway(stack.gateways[0])
        resharded = stack.start_drainable_gateway(
            env={"PUSHGATE_BROKER_URLS": ",".join(shard.url for shard in shards)}
        )
        async with PushgateClient(f"{resharded.ws_url}/ws") as after:
            resumed = {
                channel: await after.subscribe(channel, since=positions[channel])
                for channel in channels
            }
            new_epochs = {
                channel: (await after.publish(channel, {"n": 3}))["epoch"] for channel in moved
            }
    recovered = {channel: subscription.recovered for channel, subscription in resumed.items()}
    report(
        request,
        "resharding 2 -> 3 broker shards, gateways restarted",
        [
            ("channels that stayed: resume recovered", [recovered[c] for c in stays]),
            ("channels that moved: resume recovered", [recovered[c] for c in moved]),
        ],
    )
    assert all(recovered[channel] is True for channel in stays)
    assert all(recovered[channel] is False for channel in moved)
    for channel in moved:  # it starts on its new shard with a new epoch
        assert new_epochs[channel] != positions[channel].epoch


async def test_ready_with_shards_down_keeps_a_gateway_ready_while_one_shard_answers(
    request: pytest.FixtureRequest,
) -> None:
    up_channel, down_channel = placed(f"chat:policy-{uuid.uuid4().hex[:8]}", {0: 1, 1: 1})
    env = {"PUSHGATE_READY_WITH_SHARDS_DOWN": "true"}
    with (
        killable_redis() as queue,
        killable_shards(2) as shards,
        sharded_stack(queue.url, shards, gateways=1, workers=0, env=env) as stack,
    ):
        gateway = stack.gateways[0]
        async with httpx.AsyncClient(timeout=5) as http:

            async def answer_once(shards_up: list[bool]) -> tuple[int, dict[str, Any]]:
                """/readyz once its body shows ``shards_up``."""
                deadline = time.monotonic() + WAIT
                while True:
                    status, body = await readiness(http, gateway.http_url)
                    if [s["up"] for s in body.get("shards", [])] == shards_up:
                        return status, body
                    assert time.monotonic() < deadline, body
                    await asyncio.sleep(0.05)

            shards[1].kill()
            one_down = await answer_once([True, False])
            async with rpc(gateway.ws_url) as raw:
                refused = await raw.error_code("subscribe", {"channel": down_channel})
                served = await raw.result("subscribe", {"channel": up_channel})
            shards[0].kill()
            all_down = await answer_once([False, False])
            shards[0].start()
            shards[1].start()
            back = await answer_once([True, True])
    report(
        request,
        "PUSHGATE_READY_WITH_SHARDS_DOWN=true, 2 broker shards",
        [
            ("/readyz with shard 1 down", one_down[0]),
            ("subscribe on shard 1 / shard 0", (refused, sorted(served))),
            ("/readyz with both down", all_down[0]),
            ("/readyz with both back", back[0]),
        ],
    )
    assert one_down[0] == 200 and one_down[1]["status"] == "ready"
    assert refused == -32013
    assert all_down[0] == 503
    assert back[0] == 200
