"""The cluster's sharded pub/sub reader on a real three-master cluster: one connection per
master, each channel read on the master owning its slot, every publication once and in order."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pushgate.broker.cluster_pubsub import NodeConnected, NodeDisconnected
from pushgate.broker.pubsub import Confirmed
from pushgate.broker.store import HistoryPolicy
from tests.cluster import Consumer, LocalCluster, consuming

POLICY = HistoryPolicy(size=1000, ttl=60)
ROUNDS = 40


@pytest.fixture
async def consumer(redis_cluster: LocalCluster) -> AsyncIterator[Consumer]:
    async with consuming(redis_cluster, POLICY) as running:
        yield running


async def test_every_publication_once_in_order_on_every_master(
    redis_cluster: LocalCluster, consumer: Consumer
) -> None:
    owned = redis_cluster.spread("chat:live")
    channels = [channel for names in owned.values() for channel in names]
    reader = consumer.reader
    for channel in channels:
        reader.subscribe(channel)
    await consumer.until(lambda: consumer.confirmed(channels), "every subscription confirmed")
    for port, names in owned.items():
        assert {reader.node_of(c) for c in names} == {f"127.0.0.1:{port}"}
    store = consumer.store
    published: dict[str, list[str]] = {channel: [] for channel in channels}
    for i in range(ROUNDS):
        for channel in channels:
            offset, _ = await store.publish(channel, {"i": i}, POLICY)
            published[channel].append(offset)
    await consumer.until(lambda: consumer.offsets == published, "every publication")
    assert consumer.from_history == {}  # all of it came live
    connected = {e.node for e in consumer.events if isinstance(e, NodeConnected)}
    assert connected == {f"127.0.0.1:{port}" for port in redis_cluster.ports}
    assert not [e for e in consumer.events if isinstance(e, NodeDisconnected)]


async def test_unsubscribe_stops_only_that_channel(
    redis_cluster: LocalCluster, consumer: Consumer
) -> None:
    gone = redis_cluster.spread("chat:unsub", per_master=1)[redis_cluster.ports[0]][0]
    kept = "chat:unsub-kept"
    reader = consumer.reader
    reader.subscribe(gone)
    reader.subscribe(kept)
    await consumer.until(lambda: consumer.confirmed([gone, kept]), "both confirmed")
    assert reader.unsubscribe(gone)
    await consumer.until(lambda: gone not in consumer.live, "the unsubscribe confirmed")
    assert Confirmed(gone, subscribed=False) in consumer.events
    store = consumer.store
    await store.publish(gone, {"late": True}, POLICY)
    marker, _ = await store.publish(kept, {"marker": True}, POLICY)
    await consumer.until(lambda: consumer.offsets.get(kept) == [marker], "the marker")
    assert gone not in consumer.offsets
