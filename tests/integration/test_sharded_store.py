"""ShardedStore on real Redis: every key of a channel on the shard the hash names, and the
batched calls answering in the caller's order across shards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio as aioredis

from pushgate.broker import jobqueue
from pushgate.broker.keys import history_key, job_key, meta_key
from pushgate.broker.shards import ShardedStore
from pushgate.broker.store import HistoryPolicy
from pushgate.cli.redis_server import RedisServer
from pushgate.core import events
from pushgate.core.settings import Settings
from pushgate.core.sharding import shard_of
from pushgate.core.wire import job_channel
from tests.conftest import redis_db

POLICY = HistoryPolicy(size=100, ttl=60)
SHARD_DBS = (10, 11, 12)  # three shards: databases of the session's Redis keep keys apart


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[ShardedStore]:
    urls = ",".join(redis_db(redis_server, db) for db in SHARD_DBS)
    settings = Settings.from_env({"PUSHGATE_BROKER_URLS": urls})
    queue = jobqueue.connect(redis_server.url)
    sharded = ShardedStore.connect(settings, queue)
    yield sharded
    await sharded.aclose()
    await queue.aclose(close_connection_pool=True)


def names(count: int) -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"chat:store-{run}-{n}" for n in range(count)]


async def holders(store: ShardedStore, key: str) -> list[int]:
    """The shards that hold ``key``."""
    return [shard.index for shard in store.shards if await shard.redis.exists(key)]


async def test_a_channel_lives_on_the_shard_its_hash_names(store: ShardedStore) -> None:
    channels = names(30)
    for channel in channels:
        await store.publish(channel, {"c": channel}, POLICY)
    placed = [shard_of(channel, 3) for channel in channels]
    assert set(placed) == {0, 1, 2}  # the names spread over every shard
    for channel, shard in zip(channels, placed, strict=True):
        assert await holders(store, history_key(channel)) == [shard]
        assert await holders(store, meta_key(channel)) == [shard]
        [publication] = await store.history(channel)
        assert publication.data == {"c": channel}


async def test_publish_many_answers_in_order_across_shards(store: ShardedStore) -> None:
    channels = names(12)
    items = [(channel, {"n": n}) for n, channel in enumerate(channels * 3)]
    positions = await store.publish_many(items, POLICY)
    assert len(positions) == len(items)
    for channel in channels:
        history = await store.history(channel)
        mine = [pos for (c, _), pos in zip(items, positions, strict=True) if c == channel]
        assert [(p.offset, p.epoch) for p in history] == mine  # each channel in its order
        assert [p.data["n"] for p in history] == [
            n for n, (c, _) in enumerate(items) if c == channel
        ]
    newest = await store.positions(channels)
    assert newest == [await store.position(channel) for channel in channels]
    assert [offset for _epoch, offset in newest] == [
        (await store.history(channel))[-1].offset for channel in channels
    ]


async def test_a_job_and_its_events_share_the_shard_of_its_channel(store: ShardedStore) -> None:
    request_id = f"shard-{uuid.uuid4().hex}"
    shard = shard_of(job_channel(request_id), 3)
    created, _job = await store.create_job(request_id, "https://example.com/", "ann")
    assert created
    await store.publish_job_event(request_id, events.started(request_id, "https://example.com/", 1))
    assert await holders(store, job_key(request_id)) == [shard]
    assert await holders(store, history_key(job_channel(request_id))) == [shard]
    job = await store.get_job(request_id)
    assert job is not None and job.status == "running" and job.owner == "ann"


async def test_without_broker_urls_the_one_shard_is_the_queue_redis(
    redis_server: RedisServer,
) -> None:
    queue = jobqueue.connect(redis_db(redis_server, 13))
    single = ShardedStore.connect(Settings(redis_url=redis_db(redis_server, 13)), queue)
    [shard] = single.shards
    assert shard.redis is queue
    channel = names(1)[0]
    await single.publish(channel, {"n": 1}, POLICY)
    assert await queue.exists(history_key(channel))
    await single.aclose()  # not its client to close: the queue still answers
    assert await queue.ping()
    await queue.aclose(close_connection_pool=True)


async def test_a_shard_down_fails_only_its_channels(redis_server: RedisServer) -> None:
    dead = RedisServer().start()
    dead_url = dead.url
    dead.stop()
    settings = Settings.from_env(
        {"PUSHGATE_BROKER_URLS": f"{redis_db(redis_server, 14)},{dead_url}"}
    )
    queue = aioredis.Redis.from_url(redis_server.url)
    sharded = ShardedStore.connect(settings, queue, socket_timeout=1)
    channels = names(20)
    alive = [c for c in channels if shard_of(c, 2) == 0]
    down = [c for c in channels if shard_of(c, 2) == 1]
    assert alive and down
    try:
        for channel in alive:
            await sharded.publish(channel, {"n": 0}, POLICY)
        with pytest.raises(redis.exceptions.ConnectionError):
            await sharded.publish(down[0], {"n": 0}, POLICY)
        with pytest.raises(redis.exceptions.ConnectionError):
            await sharded.publish_many([(alive[0], {"n": 1}), (down[0], {"n": 1})], POLICY)
        assert [p.data["n"] for p in await sharded.history(alive[0])] == [0, 1]
    finally:
        await sharded.aclose()
        await queue.aclose(close_connection_pool=True)
