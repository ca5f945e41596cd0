"""The broker plane on a real three-master Redis Cluster (``PUSHGATE_BROKER_URLS=redis+cluster://
...``), the queue on its own Redis, two ``pushgate gateway`` replicas and two ``python -m worker``.

Channels spread over every master (by Redis's own ``CLUSTER KEYSLOT`` and slot owner): every
publication reaches every client once and in order, every job has one terminal event; a channel
whose slot moves to another master mid-stream loses nothing (or its clients are told); a master
SIGKILLed disturbs only its channels (told when it comes back empty), ``/readyz`` names it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import astuple, dataclass
from typing import Any

import httpx
import pytest

from pushgate.broker.keys import redis_channel
from pushgate.core.wire import job_channel
from tests.cluster import LocalCluster
from tests.faults.gateway_faults import (
    Publisher,
    killable_redis,
    report,
    settle,
    sharded_stack,
)
from tests.faults.test_shards import (
    close_all,
    job_seen_on_both,
    open_watchers,
    outage_rows,
    readiness,
    reconnects,
    verdict,
)
from tests.origin import Origin
from tests.rpc import rpc
from tests.stack import Stack
from tests.wsclient import read_all

PER_MASTER = 2  # channels of the stream on each master
WAIT = 30.0
# How long a moving slot's keys are on the new master while the old one still owns the slot:
# publications then are ASKed there, and their live fan-out reaches nobody (only the history
# has them, so the hub's catch-up after the move is what delivers them).
ASK_WINDOW = 0.5


def cluster_url(cluster: LocalCluster) -> str:
    return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in cluster.ports)


@dataclass
class OnCluster:
    cluster: LocalCluster
    stack: Stack

    @property
    def url(self) -> str:
        return cluster_url(self.cluster)

    @property
    def urls(self) -> list[str]:
        return [f"{gateway.ws_url}/ws" for gateway in self.stack.gateways]

    @property
    def bases(self) -> list[str]:
        return [gateway.http_url for gateway in self.stack.gateways]

    def owner(self, channel: str) -> int:
        """The port of the master owning ``channel``'s slot (Redis's KEYSLOT and map)."""
        return self.cluster.owner(self.cluster.slot(redis_channel(channel)))

    def spread(self, prefix: str, per_master: int = PER_MASTER) -> dict[int, list[str]]:
        return self.cluster.spread(f"{prefix}-{uuid.uuid4().hex[:8]}-", per_master)

    def request_id_on(self, port: int) -> str:
        """A request id whose job channel (and so its record) is on master ``port``."""
        prefix = f"cstack-{uuid.uuid4().hex[:8]}"
        for n in range(1000):  # bounded: a third of the names land on each master
            if self.owner(job_channel(f"{prefix}-{n}")) == port:
                return f"{prefix}-{n}"
        raise AssertionError(f"no request id on {port}")


@pytest.fixture
def on_cluster(own_cluster: LocalCluster, origin: Origin) -> Iterator[OnCluster]:
    # No periodic position check: only the hub's catch-up on each gap can repair one.
    env = {"PUSHGATE_BROKER_URLS": cluster_url(own_cluster), "PUSHGATE_POSITION_CHECK_SECONDS": "0"}
    with (
        killable_redis() as queue,
        sharded_stack(queue.url, [], gateways=2, workers=2, env=env) as stack,
    ):
        yield OnCluster(own_cluster, stack)


def channels_of(owned: dict[int, list[str]]) -> list[str]:
    return [channel for names in owned.values() for channel in names]


async def test_every_guarantee_holds_on_a_cluster_across_a_slot_move(
    on_cluster: OnCluster, origin: Origin, request: pytest.FixtureRequest
) -> None:
    owned = on_cluster.spread("chat:cstack")
    channels = channels_of(owned)
    assert {on_cluster.owner(channel) for channel in channels} == set(on_cluster.cluster.ports)
    clients, watchers = await open_watchers(on_cluster.urls, channels)
    publisher = Publisher(on_cluster.url, channels, rate=60).start()
    await publisher.wait_acked(60)
    page = origin.url("/pages/links.html")
    jobs = [on_cluster.request_id_on(port) for port in on_cluster.cluster.ports]
    seen = await asyncio.gather(*(job_seen_on_both(on_cluster.urls, page, rid) for rid in jobs))

    source, target, _ = on_cluster.cluster.ports
    moving = owned[source][0]
    slot = on_cluster.cluster.slot(redis_channel(moving))
    window: list[float] = []

    def ask_window() -> None:
        window.append(time.monotonic())
        time.sleep(ASK_WINDOW)
        window.append(time.monotonic())

    await asyncio.to_thread(on_cluster.cluster.move_slot, slot, target, between=ask_window)
    await publisher.wait_acked(len(publisher.acked) + 60)
    await publisher.stop()
    settled = await settle(watchers, publisher)
    await close_all(clients, watchers)

    moved = [w for w in watchers if w.channel == moving]
    others = [w for w in watchers if w.channel != moving]
    on_moved, elsewhere = verdict(moved, publisher), verdict(others, publisher)
    in_window = sum(window[0] <= a.at <= window[1] for a in publisher.of(moving))
    report(
        request,
        f"Redis Cluster (3 masters), 2 gateways, 2 workers: {len(watchers)} clients on "
        f"{len(channels)} channels, publisher at 60/s, {len(jobs)} jobs, one slot moved",
        [
            ("channels per master", [len(owned[p]) for p in on_cluster.cluster.ports]),
            ("other channels: lost / duplicated / out of order / told", astuple(elsewhere)),
            ("moved channel: lost / duplicated / out of order / told", astuple(on_moved)),
            ("moved channel: publications made in the ASK window", in_window),
            ("job events seen (submitter, other gateway)", seen[0]),
            ("publications acked, failed tries", (len(publisher.acked), publisher.failures)),
        ],
    )  # fmt: skip
    assert on_cluster.owner(moving) == target
    assert in_window > 0  # the move left a gap in the live stream for the hub to repair
    assert settled
    assert astuple(elsewhere) == (0, 0, 0, 0)
    assert (on_moved.lost, on_moved.duplicated, on_moved.disordered) == (0, 0, 0)
    for job_types in seen:
        assert job_types == [["queued", "started", "result"]] * 2
    for request_id in jobs:  # the job's record on its slot's master
        port = on_cluster.owner(job_channel(request_id))
        assert on_cluster.cluster.command(port, "EXISTS", f"pushgate:{{job:{request_id}}}:job")


async def all_answer(http: httpx.AsyncClient, bases: list[str], status: int) -> list[Any]:
    """The /readyz answers of every gateway, once all are ``status`` (bounded)."""
    deadline = time.monotonic() + WAIT
    while True:
        answers = [await readiness(http, base) for base in bases]
        if all(code == status for code, _ in answers):
            return [body for _, body in answers]
        assert time.monotonic() < deadline, answers
        await asyncio.sleep(0.05)


async def test_a_killed_master_disturbs_only_its_channels(
    on_cluster: OnCluster, origin: Origin, request: pytest.FixtureRequest
) -> None:
    owned = on_cluster.spread("chat:ckill")
    channels = channels_of(owned)
    clients, watchers = await open_watchers(on_cluster.urls, channels)
    publisher = Publisher(on_cluster.url, channels, rate=60).start()
    await publisher.wait_acked(60)
    ports = on_cluster.cluster.ports
    victim, survivor = ports[1], ports[0]
    fresh = on_cluster.spread("chat:cfresh", per_master=1)
    page = origin.url("/pages/links.html")
    bases = on_cluster.bases
    # A third gateway with the lenient policy: ready while some master is up.
    lenient = on_cluster.stack.start_drainable_gateway(
        env={"PUSHGATE_READY_WITH_SHARDS_DOWN": "true"}
    )

    on_cluster.cluster.kill(victim)
    killed_at = time.monotonic()
    async with httpx.AsyncClient(timeout=5) as http:
        down = await all_answer(http, bases, 503)
        unready_after = time.monotonic() - killed_at
        lenient_answer = await readiness(http, lenient.http_url)
        async with rpc(on_cluster.stack.gateways[0].ws_url) as raw:
            refused = await raw.error_code("subscribe", {"channel": fresh[victim][0]})
            served = await raw.result("subscribe", {"channel": fresh[survivor][0]})
        job_during = await job_seen_on_both(
            on_cluster.urls, page, on_cluster.request_id_on(survivor)
        )
        on_victim_job = on_cluster.request_id_on(victim)
        refused_job = await http.post(
            bases[1] + "/jobs", json={"url": page, "request_id": on_victim_job}
        )
        jobs_url = f"{on_cluster.stack.gateways[1].ws_url}/ws/jobs/"
        job_socket = await read_all(jobs_url + on_victim_job)
        await publisher.wait_acked(len(publisher.acked) + 40)
        await asyncio.to_thread(on_cluster.cluster.restart, victim)  # empty: nothing persisted
        back_at = time.monotonic()
        back = await all_answer(http, [*bases, lenient.http_url], 200)
        ready_after = time.monotonic() - back_at
    await publisher.wait_acked(len(publisher.acked) + 60)
    await publisher.stop()
    settled = await settle(watchers, publisher)
    await close_all(clients, watchers)

    counted = [reconnects(base) for base in bases]
    on_victim = [w for w in watchers if w.channel in owned[victim]]
    elsewhere = [w for w in watchers if w.channel not in owned[victim]]
    disturbed, undisturbed = verdict(on_victim, publisher), verdict(elsewhere, publisher)
    victim_address = f"127.0.0.1:{victim}"
    report(
        request,
        f"a master of 3 SIGKILLed and restarted empty: {len(watchers)} clients on 2 gateways, "
        "publisher at 60/s",
        [
            *outage_rows("master", undisturbed, disturbed, on_victim),
            ("/readyz 503 on both gateways after (s)", round(unready_after, 3)),
            ("/readyz 200 on both after the restart (s)", round(ready_after, 3)),
            ("/readyz body while down", down[0]),
            ("/readyz with PUSHGATE_READY_WITH_SHARDS_DOWN=true while down", lenient_answer[0]),
            ("POST /jobs on the killed master, its /ws/jobs close",
             (refused_job.status_code, job_socket.close_code)),
            ("subscribe: killed master / another", (refused, served)),
            ("job on another master during the outage", job_during[0]),
            ("pub/sub reconnects by shard label, per gateway", counted),
            ("publications acked (failed tries)", (len(publisher.acked), publisher.failures)),
        ],
    )  # fmt: skip
    assert settled
    assert astuple(undisturbed) == (0, 0, 0, 0)  # nobody on another master noticed anything
    assert (disturbed.lost, disturbed.duplicated, disturbed.disordered) == (0, 0, 0)
    assert all(w.unrecovered for w in on_victim)  # the master came back empty: told
    for body in down:
        masters = sorted(f"127.0.0.1:{port}" for port in ports)
        assert [(s["address"], s["up"]) for s in body["shards"]] == [
            (address, address != victim_address) for address in masters
        ]
        assert victim_address in body["error"]["message"]
    for body in back:
        assert all(s["up"] for s in body["shards"])
    assert refused == -32013
    assert lenient_answer[0] == 200
    assert [s["up"] for s in lenient_answer[1]["shards"]] == [s["up"] for s in down[0]["shards"]]
    assert (refused_job.status_code, job_socket.close_code) == (503, 1013)
    assert job_during == [["queued", "started", "result"]] * 2
    assert counted == [{"0": 1.0}] * 2  # the cluster is shard 0; one master lost, once


async def test_a_replica_taking_over_a_killed_master_carries_its_channels_on(
    origin: Origin, request: pytest.FixtureRequest
) -> None:
    cluster = LocalCluster(masters=3, replicas=1, node_timeout=1000).start()
    env = {"PUSHGATE_BROKER_URLS": cluster_url(cluster), "PUSHGATE_POSITION_CHECK_SECONDS": "0"}
    try:
        with (
            killable_redis() as queue,
            sharded_stack(queue.url, [], gateways=2, workers=0, env=env) as stack,
        ):
            await _failover(OnCluster(cluster, stack), request)
    finally:
        cluster.stop()


async def _failover(on_cluster: OnCluster, request: pytest.FixtureRequest) -> None:
    cluster = on_cluster.cluster
    masters = cluster.masters()
    owned = on_cluster.spread("chat:cfail")
    channels = channels_of(owned)
    clients, watchers = await open_watchers(on_cluster.urls, channels)
    publisher = Publisher(on_cluster.url, channels, rate=60).start()
    await publisher.wait_acked(60)
    victim = next(port for port in masters if port != cluster.ports[0])  # not the asked node

    cluster.kill(victim)
    killed_at = time.monotonic()
    await asyncio.to_thread(cluster.wait_for_failover, victim)
    promoted = sorted(set(cluster.masters()) - set(masters))
    taken_over = time.monotonic() - killed_at
    async with httpx.AsyncClient(timeout=5) as http:
        deadline = time.monotonic() + WAIT
        while True:
            answers = [await readiness(http, base) for base in on_cluster.bases]
            listed = [[s["address"] for s in body.get("shards", [])] for _, body in answers]
            expected = sorted(f"127.0.0.1:{port}" for port in cluster.masters())
            if all(code == 200 for code, _ in answers) and listed == [expected] * 2:
                break
            assert time.monotonic() < deadline, answers
            await asyncio.sleep(0.05)
        ready_after = time.monotonic() - killed_at
    await publisher.wait_acked(len(publisher.acked) + 60)
    await publisher.stop()
    settled = await settle(watchers, publisher)
    await close_all(clients, watchers)

    on_victim = [w for w in watchers if w.channel in owned[victim]]
    elsewhere = [w for w in watchers if w.channel not in owned[victim]]
    disturbed, undisturbed = verdict(on_victim, publisher), verdict(elsewhere, publisher)
    report(
        request,
        f"a master of 3 (each with a replica) SIGKILLed, its replica promoted: {len(watchers)} "
        "clients on 2 gateways, publisher at 60/s",
        [
            ("other masters: lost / duplicated / out of order / told", astuple(undisturbed)),
            ("killed master's channels: lost / duplicated / out of order / told",
             astuple(disturbed)),
            ("kill until the cluster agreed on the promoted replica (s)", round(taken_over, 3)),
            ("kill until both gateways ready, listing the new master (s)", round(ready_after, 3)),
            ("publications acked (failed tries)", (len(publisher.acked), publisher.failures)),
        ],
    )  # fmt: skip
    assert len(promoted) == 1
    assert settled
    assert astuple(undisturbed) == (0, 0, 0, 0)
    assert (disturbed.lost, disturbed.duplicated, disturbed.disordered) == (0, 0, 0)
