"""Faults of a real Redis Cluster under the sharded pub/sub reader: a test channel's slot moves
to another master while it is published to, and a master is SIGKILLed. The consumer (reading
live, and the history after each gap, as the hub does) must end with every publication once and
in order, or be told; a dead master affects only its own channels."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
import redis.exceptions

from pushgate.broker.cluster_pubsub import NodeDisconnected, Resubscribed
from pushgate.broker.cluster_store import ClusterStore, cluster_client
from pushgate.broker.keys import redis_channel
from pushgate.broker.pubsub import Confirmed
from pushgate.broker.store import Backend, HistoryPolicy
from tests.cluster import Consumer, LocalCluster, consuming
from tests.faults.conftest import Figures

POLICY = HistoryPolicy(size=10_000, ttl=60)
# Keeps all that eight publishers manage in a second (the test compares the whole history).
CROWD_POLICY = HistoryPolicy(size=1_000_000, ttl=60)
# Publications made while the slot's keys are on the new master but its old one still owns it
# (writes are ASKed there, live fan-out reaches nobody): only the history has them.
ASK_WINDOW = 0.3


async def publish_once(store: Backend, channel: str, i: int) -> str:
    """Publish ``{"i": i}`` once, as an API caller would: redis-py's cluster client may drop a
    connection to a surviving master while it rebuilds its node list after another one died, so
    a publication that got no answer is sent again under the same idempotency key (bounded)."""
    for _ in range(5):
        try:
            offset, _ = await store.publish(
                channel, {"i": i}, POLICY, idempotency=(f"{channel}-{i}", 60)
            )
            return offset
        except redis.exceptions.ConnectionError:
            await asyncio.sleep(0.2)
    raise AssertionError(f"publishing to {channel} kept failing")


@pytest.fixture
async def consumer(own_cluster: LocalCluster) -> AsyncIterator[Consumer]:
    async with consuming(own_cluster, POLICY) as running:
        yield running


async def publish_until(
    store: Backend, channels: list[str], done: asyncio.Event
) -> dict[str, list[str]]:
    """Publish to each channel in turn until ``done`` (bounded), then once more."""
    published: dict[str, list[str]] = {channel: [] for channel in channels}
    for i in range(20_000):
        for channel in channels:
            offset, _ = await store.publish(channel, {"i": i}, POLICY)
            published[channel].append(offset)
        if done.is_set():
            break
        await asyncio.sleep(0.002)
    return published


async def test_slot_migration_mid_stream_loses_nothing(
    own_cluster: LocalCluster, consumer: Consumer, figures: Figures
) -> None:
    owned = own_cluster.spread("chat:move", per_master=1)
    source, target, bystander = own_cluster.ports
    moving, staying = owned[source][0], owned[bystander][0]
    for channel in (moving, staying):
        consumer.reader.subscribe(channel)
    await consumer.until(lambda: consumer.confirmed([moving, staying]), "both confirmed")
    slot = own_cluster.slot(redis_channel(moving))
    done = asyncio.Event()
    publisher = asyncio.create_task(publish_until(consumer.store, [moving, staying], done))
    await asyncio.sleep(0.2)  # a stream is flowing before the move
    handed_over: list[float] = []

    def ask_window() -> None:
        time.sleep(ASK_WINDOW)
        handed_over.append(time.monotonic())  # SETSLOT NODE follows at once

    await asyncio.to_thread(own_cluster.move_slot, slot, target, between=ask_window)
    await consumer.until(
        lambda: any(isinstance(e, Resubscribed) and e.channel == moving for e in consumer.events),
        "the moved channel resubscribed on its new master",
    )
    resubscribed = next(
        at
        for e, at in zip(consumer.events, consumer.seen_at, strict=True)
        if isinstance(e, Resubscribed)
    )
    gap_ms = (resubscribed - handed_over[0]) * 1000
    figures.add("ownership handed over to Resubscribed (ms)", f"{gap_ms:.0f}")
    await asyncio.sleep(0.2)  # and the stream goes on after it
    done.set()
    published = await publisher
    await consumer.until(lambda: consumer.offsets == published, "every publication, once, in order")
    assert consumer.reader.node_of(moving) == f"127.0.0.1:{target}"
    assert own_cluster.owner(slot) == target
    assert not consumer.lost
    # The gap was real: what was published in the ASK window came only from the history.
    assert consumer.from_history.get(moving, 0) > 0
    assert staying not in consumer.from_history
    assert not [e for e in consumer.events if isinstance(e, Resubscribed) and e.channel != moving]
    figures.add("publications on the moved channel", len(published[moving]))
    figures.add("of them read from history after the gap", consumer.from_history[moving])


async def test_a_killed_master_disconnects_only_its_channels(
    own_cluster: LocalCluster, consumer: Consumer
) -> None:
    owned = own_cluster.spread("chat:kill")
    channels = [channel for names in owned.values() for channel in names]
    for channel in channels:
        consumer.reader.subscribe(channel)
    await consumer.until(lambda: consumer.confirmed(channels), "every subscription confirmed")
    victim, *survivors = own_cluster.ports  # the seed node of both clients, too
    own_cluster.kill(victim)
    await consumer.until(
        lambda: any(isinstance(e, NodeDisconnected) for e in consumer.events), "a disconnect"
    )
    down = [e for e in consumer.events if isinstance(e, NodeDisconnected)]
    assert [(e.node, e.channels) for e in down] == [
        (f"127.0.0.1:{victim}", frozenset(owned[victim]))
    ]
    # The other masters' channels stay live: publications still arrive, no gap, no resubscribe.
    expected = {
        channel: list(consumer.offsets.get(channel, [])) for p in survivors for channel in owned[p]
    }
    for i in range(20):
        for port in survivors:
            for channel in owned[port]:
                offset = await publish_once(consumer.store, channel, i)
                expected[channel].append(offset)
    await consumer.until(
        lambda: all(consumer.offsets.get(c) == o for c, o in expected.items()),
        "the survivors' publications",
    )
    assert not [e for e in consumer.events if isinstance(e, Resubscribed)]
    assert [e for e in consumer.events if isinstance(e, NodeDisconnected)] == down


async def test_concurrent_publishers_during_a_slot_move_store_each_publication_once(
    own_cluster: LocalCluster, figures: Figures
) -> None:
    """With redis-py's cluster retries on, a script whose reply was lost ran twice (duplicates
    in the history); with its ASK handling alone, many calls failed 'TTL exhausted'."""
    client = cluster_client(own_cluster.url)
    store = ClusterStore(client, jobs=POLICY)
    channel = own_cluster.spread("chat:crowd", per_master=1)[own_cluster.ports[0]][0]
    done = asyncio.Event()
    stored: list[int] = []
    failures: list[str] = []

    async def publisher(first: int) -> None:
        for n in range(first, first + 100_000, 8):  # bounded; ends when the move is over
            if done.is_set():
                return
            try:
                await store.publish(channel, {"n": n}, CROWD_POLICY)
                stored.append(n)
            except Exception as exc:
                failures.append(repr(exc))

    tasks = [asyncio.create_task(publisher(first)) for first in range(8)]
    try:
        await asyncio.sleep(0.2)
        slot = own_cluster.slot(redis_channel(channel))
        await asyncio.to_thread(
            own_cluster.move_slot,
            slot,
            own_cluster.ports[1],
            between=lambda: time.sleep(ASK_WINDOW),
        )
        await asyncio.sleep(0.2)
    finally:
        done.set()
        await asyncio.gather(*tasks)
    history = [p.data["n"] for p in await store.history(channel)]
    await client.aclose()
    assert failures == []
    assert sorted(history) == sorted(stored)
    assert len(set(history)) == len(history)
    figures.add("publications by 8 concurrent publishers across the move", len(stored))


async def test_a_subscribe_on_a_stale_slot_map_follows_moved(
    own_cluster: LocalCluster, consumer: Consumer
) -> None:
    """The slot moves while nobody here reads the channel (no unasked sunsubscribe): the reader's
    map is stale, its SSUBSCRIBE goes to the old master, whose MOVED sends it to the new one."""
    source, target, _ = own_cluster.ports
    channel = own_cluster.spread("chat:stale", per_master=1)[source][0]
    await asyncio.to_thread(own_cluster.move_slot, own_cluster.slot(redis_channel(channel)), target)
    assert consumer.reader.subscribe(channel)
    assert consumer.reader.node_of(channel) == f"127.0.0.1:{source}"  # placed by the stale map
    await consumer.until(lambda: consumer.confirmed([channel]), "the subscribe answered")
    assert consumer.reader.node_of(channel) == f"127.0.0.1:{target}"
    offset, _ = await consumer.store.publish(channel, {"after": "move"}, POLICY)
    await consumer.until(lambda: consumer.offsets.get(channel) == [offset], "the live publication")
    answers = [e for e in consumer.events if getattr(e, "channel", None) == channel]
    assert answers == [Confirmed(channel, subscribed=True)]  # one answer to one call


async def test_a_restarted_master_resubscribes_and_its_lost_history_is_told(
    own_cluster: LocalCluster, consumer: Consumer
) -> None:
    """The master comes back empty (nothing persisted): its channels are confirmed again, and
    the catch-up that follows finds the history no longer covers them: told, never silent."""
    owned = own_cluster.spread("chat:restart")
    victim, *survivors = own_cluster.ports
    channels = [channel for names in owned.values() for channel in names]
    for channel in channels:
        consumer.reader.subscribe(channel)
    await consumer.until(lambda: consumer.confirmed(channels), "every subscription confirmed")
    for channel in channels:
        await consumer.store.publish(channel, {"before": True}, POLICY)
    await consumer.until(lambda: all(consumer.offsets.get(c) for c in channels), "first round")
    own_cluster.kill(victim)
    await consumer.until(
        lambda: any(isinstance(e, NodeDisconnected) for e in consumer.events), "the disconnect"
    )
    # Catch-ups read the restarted master directly (the channels' slots are its own): redis-py's
    # cluster client, reinitialized while the master comes back, leaves the connections of the
    # node objects it replaced open, which warn when collected (in some later test).
    direct = aioredis.Redis(host="127.0.0.1", port=victim)
    consumer.store = Backend(direct, jobs=POLICY)
    await asyncio.to_thread(own_cluster.restart, victim)

    def confirmations(channel: str) -> int:
        return consumer.events.count(Confirmed(channel, subscribed=True))

    await consumer.until(
        lambda: all(confirmations(c) == 2 for c in owned[victim]), "the resubscriptions"
    )
    # Each catch-up follows its confirmation: wait for both to be told.
    await consumer.until(lambda: consumer.lost == set(owned[victim]), "the lost histories told")
    assert all(confirmations(c) == 1 for p in survivors for c in owned[p])
    await direct.aclose()
