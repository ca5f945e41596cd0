"""Batched channel position reads (gateway/delivery/positions.py) against a real Redis: each caller
gets its own channel's answer; the reads asked for while a batch is in flight go in the next
one; a failure reaches every caller of its batch, a caller that gave up does not disturb the
others, and a Redis that hangs holds up no read once it answers again."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.delivery import positions
from gateway.delivery.positions import PositionReads
from pushgate.broker import store
from pushgate.broker.store import Backend, HistoryPolicy
from pushgate.cli.redis_server import RedisServer

POLICY = HistoryPolicy(size=10, ttl=60)
TIMEOUT = 5.0


@pytest.fixture
async def backend(redis_server: RedisServer) -> AsyncIterator[Backend]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield Backend(client, jobs=POLICY)
    await client.aclose()


def batch_sizes(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of channels of each ``positions`` call ``backend`` gets from here on (the
    calls still go to Redis)."""
    sent: list[int] = []
    real = backend.positions

    async def counting(channels: list[str]) -> list[tuple[str, str]]:
        sent.append(len(channels))
        return await real(channels)

    monkeypatch.setattr(backend, "positions", counting)
    return sent


async def test_each_read_gets_its_own_channels_position(backend: Backend) -> None:
    channels = [f"chat:pos-{uuid.uuid4().hex}" for _ in range(7)]
    for n, channel in enumerate(channels[:5]):
        for i in range(n + 1):
            await backend.publish(channel, {"i": i}, POLICY)
    reads = PositionReads(backend, timeout=TIMEOUT)
    batched = await asyncio.gather(*(reads.read(c) for c in channels))
    one_by_one = [await backend.position(c) for c in channels]
    assert batched == one_by_one
    assert batched[-1] == ("", "")  # no history
    assert len({offset for _, offset in batched[:5]}) == 5


async def test_a_turn_with_more_reads_than_a_batch_sends_several(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(positions, "MAX_BATCH", 3)
    sent = batch_sizes(backend, monkeypatch)
    channel = f"chat:pos-{uuid.uuid4().hex}"
    await backend.publish(channel, {}, POLICY)
    reads = PositionReads(backend, timeout=TIMEOUT)
    answers = await asyncio.gather(*(reads.read(channel) for _ in range(8)))
    assert sent == [3, 3, 2]
    assert len(set(answers)) == 1


async def test_a_failure_reaches_every_caller_and_a_cancelled_one_is_skipped() -> None:
    gone = RedisServer().start()
    client = aioredis.Redis.from_url(gone.url)
    reads = PositionReads(Backend(client, jobs=POLICY), timeout=TIMEOUT)
    gone.stop()  # nothing listens there now
    try:
        first, second, abandoned = (reads.read(f"chat:x{i}") for i in range(3))
        abandoned.cancel()
        results = await asyncio.gather(first, second, return_exceptions=True)
        assert all(isinstance(r, RedisConnectionError | OSError) for r in results), results
        assert abandoned.cancelled()
    finally:
        await client.aclose()


async def test_a_batch_is_one_script_call_and_survives_a_script_flush(
    backend: Backend, redis_server: RedisServer
) -> None:
    """One EVALSHA per batch, never redis-py's SCRIPT EXISTS; a Redis that lost its scripts (a
    restart, SCRIPT FLUSH) gets the script loaded again."""
    channels = [f"chat:pos-{uuid.uuid4().hex}" for _ in range(4)]
    for channel in channels[:3]:
        await backend.publish(channel, {"x": 1}, POLICY)
    expected = [await backend.position(c) for c in channels]
    admin = aioredis.Redis.from_url(redis_server.url)
    try:
        await admin.script_flush()
        await admin.config_resetstat()
        assert await backend.positions(channels) == expected  # NOSCRIPT, loaded, sent again
        assert await backend.positions(channels) == expected
        stats = await admin.info("commandstats")
    finally:
        await admin.aclose()
    assert "cmdstat_script|exists" not in stats
    assert stats["cmdstat_script|load"]["calls"] == 1
    assert stats["cmdstat_evalsha"]["calls"] == 3  # the refused one, its retry, the second


async def test_reads_asked_for_while_a_batch_is_in_flight_go_in_the_next(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = batch_sizes(backend, monkeypatch)
    reads = PositionReads(backend, timeout=TIMEOUT)
    first = reads.read("chat:first")
    await asyncio.sleep(0)  # the first batch is on its way to Redis
    later = [reads.read(f"chat:later{i}") for i in range(6)]
    await asyncio.gather(first, *later)
    assert sent == [1, 6]


async def test_a_hung_redis_fails_its_batch_and_holds_up_no_later_read() -> None:
    """Redis stopped (SIGSTOP) while a batch waits: that batch fails after the timeout, and
    once Redis answers again a new read is answered (nothing waits behind the hung one)."""
    with RedisServer() as stalled:
        client = aioredis.Redis.from_url(stalled.url)
        reads = PositionReads(Backend(client, jobs=POLICY), timeout=1.0)
        assert stalled.process is not None
        try:
            stalled.process.send_signal(signal.SIGSTOP)
            hung = reads.read("chat:hung")
            await asyncio.sleep(0)  # its batch is on its way to Redis
            queued = reads.read("chat:queued")  # waits for the next batch, behind the hung one
            with pytest.raises(TimeoutError):
                await hung
            stalled.process.send_signal(signal.SIGCONT)
            assert await asyncio.wait_for(queued, TIMEOUT) == ("", "")
            assert await asyncio.wait_for(reads.read("chat:after"), TIMEOUT) == ("", "")
        finally:
            stalled.process.send_signal(signal.SIGCONT)
            await client.aclose()


async def test_many_channels_are_read_in_bounded_script_calls(
    backend: Backend, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway's position check reads every live channel: Redis runs a script to its end, so
    no call reads more than POSITIONS_CHUNK channels."""
    monkeypatch.setattr(store, "POSITIONS_CHUNK", 4)
    channels = [f"chat:pos-{uuid.uuid4().hex}" for _ in range(10)]
    for channel in channels[::3]:
        await backend.publish(channel, {"x": 1}, POLICY)
    one_by_one = [await backend.position(c) for c in channels]
    admin = aioredis.Redis.from_url(redis_server.url)
    try:
        await admin.config_resetstat()
        assert await backend.positions(channels) == one_by_one
        stats = await admin.info("commandstats")
    finally:
        await admin.aclose()
    assert stats["cmdstat_evalsha"]["calls"] == 3  # 4 + 4 + 2 channels
