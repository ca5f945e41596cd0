"""The ClusterStore on a real three-master Redis Cluster: every operation of Backend on channels
spread over all masters, each channel's keys on the master owning its slot, and live fan-out by
SPUBLISH reaching only that master."""

from __future__ import annotations

import asyncio
import random
import string
from collections.abc import AsyncIterator

import hiredis
import pytest

from pushgate.broker import keys
from pushgate.broker.cluster_slots import key_slot
from pushgate.broker.cluster_store import ClusterStore, cluster_client
from pushgate.broker.pubsub import command
from pushgate.broker.store import HistoryPolicy
from pushgate.core import events
from pushgate.core.events import JobStatus
from pushgate.core.wire import job_channel
from tests.cluster import LocalCluster

POLICY = HistoryPolicy(size=100, ttl=60)
WAIT = 5.0


@pytest.fixture
async def store(redis_cluster: LocalCluster) -> AsyncIterator[ClusterStore]:
    client = cluster_client(redis_cluster.url)
    yield ClusterStore(client, jobs=POLICY)
    await client.aclose()


def test_key_slot_agrees_with_the_server_on_random_keys(redis_cluster: LocalCluster) -> None:
    rng = random.Random(7)
    alphabet = string.ascii_letters + "{}:é"
    for _ in range(300):
        key = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
        assert key_slot(key) == redis_cluster.slot(key), key


async def test_round_trip_on_every_master(redis_cluster: LocalCluster, store: ClusterStore) -> None:
    owned = redis_cluster.spread("chat:rt")
    for port, channels in owned.items():
        for channel in channels:
            first = await store.publish(channel, {"n": 1}, POLICY)
            again = await store.publish(channel, {"n": 1}, POLICY, idempotency=("k", 60))
            assert await store.publish(channel, {"n": 9}, POLICY, idempotency=("k", 60)) == again
            assert [p.data for p in await store.history(channel)] == [{"n": 1}, {"n": 1}]
            replay = await store.replay(channel, after=first[0], since_epoch=first[1])
            assert replay.recovered
            assert [p.offset for p in replay.publications] == [again[0]]
            assert await store.position(channel) == (first[1], again[0])
            latest = await store.latest(channel, 1)
            assert [p.offset for p in latest.publications] == [again[0]] == [latest.offset]
            # The history lives on the master owning the channel's slot, and only there.
            slot = redis_cluster.slot(keys.history_key(channel))
            for other in redis_cluster.ports:
                stored = redis_cluster.command(other, "CLUSTER", "COUNTKEYSINSLOT", slot)
                assert stored == (3 if other == port else 0)  # history, meta, idempotency


async def test_publish_many_and_positions_span_every_master(
    redis_cluster: LocalCluster, store: ClusterStore
) -> None:
    channels = [c for names in redis_cluster.spread("chat:many").values() for c in names]
    items = [(channels[i % len(channels)], {"i": i}) for i in range(60)]
    positions = await store.publish_many(items, POLICY)
    for channel in channels:
        mine = [i for i, (c, _) in enumerate(items) if c == channel]
        history = await store.history(channel)
        assert [p.data for p in history] == [{"i": i} for i in mine]
        assert [p.offset for p in history] == [positions[i][0] for i in mine]
    newest = await store.positions(channels)
    assert newest == [await store.position(channel) for channel in channels]


async def test_jobs_on_every_master(redis_cluster: LocalCluster, store: ClusterStore) -> None:
    ids: list[str] = []
    for i in range(200):
        owners = {redis_cluster.owner(key_slot(keys.job_key(r))) for r in ids}
        request_id = f"req-{i}"
        if redis_cluster.owner(key_slot(keys.job_key(request_id))) not in owners:
            ids.append(request_id)
        if len(ids) == len(redis_cluster.ports):
            break
    assert len(ids) == len(redis_cluster.ports)
    for request_id in ids:
        created, job = await store.create_job(request_id, "https://example.com/", "alice")
        assert created
        assert job.status is JobStatus.QUEUED
        assert not (await store.create_job(request_id, "https://example.com/", "bob"))[0]
        assert await store.publish_job_event(request_id, events.started(request_id, "u", 1))
        done = events.result(
            request_id, "u", final_url="u", status_code=200, title="t", links=[],
            links_truncated=False, elapsed_ms=1,
        )  # fmt: skip
        assert await store.publish_job_event(request_id, done)
        assert await store.publish_job_event(request_id, events.started(request_id, "u", 1)) is None
        record = await store.get_job(request_id)
        assert record is not None
        assert record.status is JobStatus.DONE
        assert record.result is not None
        assert record.result["title"] == "t"
        assert record.owner == "alice"
        types = [p.data for p in await store.history(job_channel(request_id))]
        assert len(types) == 3
    assert await store.ping()


class RawConnection:
    """A bare RESP connection to one node (as a pub/sub client of any library would be)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._parser = hiredis.Reader(encoding="utf-8")

    @classmethod
    async def open(cls, port: int) -> RawConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    def send(self, *args: str) -> None:
        self._writer.write(command(*args))

    async def reply(self, timeout: float = WAIT) -> object:
        async with asyncio.timeout(timeout):
            while (reply := self._parser.gets()) is False:
                data = await self._reader.read(65536)
                assert data, "the node closed the connection"
                self._parser.feed(data)
        return reply

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()


async def test_spublish_reaches_only_the_owning_master(
    redis_cluster: LocalCluster, store: ClusterStore
) -> None:
    channel = "chat:sharded"
    name = keys.redis_channel(channel)
    owner = redis_cluster.owner(key_slot(name))
    raws = {port: await RawConnection.open(port) for port in redis_cluster.ports}
    try:
        for port, raw in raws.items():
            raw.send("SSUBSCRIBE", name)
            reply = await raw.reply()
            if port == owner:
                assert reply == ["ssubscribe", name, 1]
            else:  # a sharded channel can be read only where its slot is
                assert isinstance(reply, hiredis.ReplyError)
                assert str(reply) == f"MOVED {key_slot(name)} 127.0.0.1:{owner}"
                raw.send("SUBSCRIBE", name)  # and a plain subscriber there hears nothing
                assert await raw.reply() == ["subscribe", name, 1]
        offset, epoch = await store.publish(channel, {"hello": 1}, POLICY)
        assert await raws[owner].reply() == ["smessage", name, f'{offset} {epoch} {{"hello":1}}']
        for port, raw in raws.items():
            raw.send("PING")  # answered after anything the publication would have sent here
            pong = await raw.reply()
            assert pong == ["pong", ""], (port, pong)
    finally:
        for raw in raws.values():
            await raw.close()
