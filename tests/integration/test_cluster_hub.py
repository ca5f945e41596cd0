"""The hub on a real Redis Cluster, through ``ClusterPubSub`` and a ``redis+cluster://`` URL:
it connects in the background from the seed nodes, and delivers each master's channels."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from gateway.delivery.hub import Hub
from pushgate.broker.cluster_pubsub import ClusterPubSub
from pushgate.broker.shards import ShardedStore
from pushgate.cli.processes import free_port
from pushgate.core.errors import PushgateError
from tests.cluster import LocalCluster
from tests.integration.test_hub import POLICY, Recorder, started


def seeds(cluster: LocalCluster, *, dead_first: bool = False) -> str:
    ports = [free_port()] if dead_first else []  # nothing listens there
    return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in [*ports, *cluster.ports])


async def test_a_hub_on_a_cluster_delivers_every_masters_channels(
    redis_cluster: LocalCluster,
) -> None:
    url = seeds(redis_cluster, dead_first=True)  # the first seed that answers gives the map
    store = ShardedStore.on_cluster(url, POLICY)
    assert store.cluster is not None
    reader = ClusterPubSub(url, ping_interval=0.5)
    hub = Hub(reader, store.cluster)
    await started(hub)
    try:
        owned = redis_cluster.spread(f"hubtest:c-{uuid.uuid4().hex[:6]}-", per_master=1)
        recorders = {channel: Recorder() for names in owned.values() for channel in names}
        for channel, recorder in recorders.items():
            await hub.subscribe(channel, recorder)
        assert {reader.node_of(c) for c in recorders} == {
            f"127.0.0.1:{port}" for port in redis_cluster.ports
        }
        assert [up for _, up in reader.masters()] == [True] * 3
        items = [(channel, {"n": n}) for n in range(3) for channel in recorders]
        published = await store.publish_many(items, POLICY)
        for recorder in recorders.values():
            await recorder.wait_for(3)
        for channel, recorder in recorders.items():
            mine = zip(items, published, strict=True)
            assert recorder.offsets == [offset for (c, _), (offset, _) in mine if c == channel]
    finally:
        await hub.stop()
        await store.aclose()


async def test_a_hub_without_any_seed_answering_refuses_subscribers() -> None:
    url = f"redis+cluster://127.0.0.1:{free_port()}"
    store = ShardedStore.on_cluster(url, POLICY)
    assert store.cluster is not None
    hub = Hub(ClusterPubSub(url, ping_interval=0.5), store.cluster)
    await hub.start()
    try:
        await asyncio.sleep(0.2)  # a few tries at the slot map
        assert not hub.connected
        with pytest.raises(PushgateError, match="unavailable"):
            await hub.subscribe("hubtest:nowhere", Recorder())
    finally:
        await hub.stop()
        await store.aclose()
