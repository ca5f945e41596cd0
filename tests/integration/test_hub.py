"""The hub against a real Redis: refcounted subscriptions and catch-up after a reconnect."""

from __future__ import annotations

import asyncio
import math
import signal
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from gateway.delivery.hub import Hub
from gateway.delivery.positions import PositionReads
from gateway.delivery.subscribe import SUBSCRIBE_TIMEOUT, subscribe_at_newest
from pushgate.broker.keys import history_key, redis_channel
from pushgate.broker.pubsub import (
    RESUBSCRIBE_BATCH,
    Confirmed,
    Disconnected,
    PubSubConnection,
    PubSubError,
    command,
)
from pushgate.broker.store import Backend, HistoryPolicy
from pushgate.cli.redis_server import RedisServer
from pushgate.core.errors import ErrorKind, PushgateError
from pushgate.core.wire import Publication

WAIT = 10.0
POLICY = HistoryPolicy(size=100, ttl=60)


class Recorder:
    def __init__(self) -> None:
        self.offsets: list[str] = []
        self.changed = asyncio.Event()

    def deliver(self, publication: Publication) -> None:
        self.offsets.append(publication.offset)
        self.changed.set()

    def lost(self) -> None:
        raise AssertionError("the hub gave up a channel it could catch up")

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(WAIT):
            while len(self.offsets) < count:
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.Redis.from_url(redis_server.url)
    yield redis
    await redis.aclose()


@pytest.fixture
async def hub(redis_server: RedisServer, client: aioredis.Redis) -> AsyncIterator[Hub]:
    backend = Backend(client, jobs=POLICY)
    hub = Hub(PubSubConnection(redis_server.url, ping_interval=0.5), backend)
    await started(hub)
    yield hub
    await hub.stop()


async def started(hub: Hub) -> None:
    """Start ``hub`` and wait until it is connected (it refuses subscribers until then)."""
    await hub.start()
    async with asyncio.timeout(WAIT):
        while not hub.connected:
            await asyncio.sleep(0.01)


async def pubsub_channels(client: aioredis.Redis) -> set[str]:
    names = await client.pubsub_channels("pushgate:{hubtest*")
    return {name.decode() for name in names}


async def test_subscribes_once_per_channel_and_unsubscribes_after_last(
    hub: Hub, client: aioredis.Redis
) -> None:
    backend = Backend(client, jobs=POLICY)
    first, second = Recorder(), Recorder()
    await hub.subscribe("hubtest:a", first)
    await hub.subscribe("hubtest:a", second)
    assert await pubsub_channels(client) == {"pushgate:{hubtest:a}"}
    offset = (await backend.publish("hubtest:a", {"n": 1}, POLICY))[0]
    await first.wait_for(1)
    await second.wait_for(1)
    assert first.offsets == second.offsets == [offset]
    hub.unsubscribe("hubtest:a", first)
    assert hub.channel_count == 1
    hub.unsubscribe("hubtest:a", second)
    assert hub.channel_count == 0
    async with asyncio.timeout(WAIT):
        while await pubsub_channels(client):
            await asyncio.sleep(0.02)


async def test_rapid_subscribe_unsubscribe_cycles_end_live(
    hub: Hub, client: aioredis.Redis
) -> None:
    backend = Backend(client, jobs=POLICY)
    for _ in range(20):
        transient = Recorder()
        await hub.subscribe("hubtest:cycle", transient)
        hub.unsubscribe("hubtest:cycle", transient)
    keeper = Recorder()
    await hub.subscribe("hubtest:cycle", keeper)
    offset = (await backend.publish("hubtest:cycle", {"n": 1}, POLICY))[0]
    await keeper.wait_for(1)
    assert keeper.offsets == [offset]
    hub.unsubscribe("hubtest:cycle", keeper)


async def test_catches_up_from_history_after_pubsub_connection_is_killed(
    hub: Hub, client: aioredis.Redis
) -> None:
    backend = Backend(client, jobs=POLICY)
    recorder = Recorder()
    await hub.subscribe("hubtest:reconnect", recorder)
    published = [(await backend.publish("hubtest:reconnect", {"n": 0}, POLICY))[0]]
    await recorder.wait_for(1)
    for round_ in range(3):
        await client.client_kill_filter(_type="pubsub")
        # Published while the hub is disconnected: only the history has these.
        for n in range(5):
            offset, _ = await backend.publish("hubtest:reconnect", {"n": round_ * 5 + n}, POLICY)
            published.append(offset)
        await recorder.wait_for(len(published))
    assert recorder.offsets == published
    assert hub.connected
    hub.unsubscribe("hubtest:reconnect", recorder)


class LossRecorder(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.told = asyncio.Event()

    def lost(self) -> None:
        self.told.set()


async def test_a_catch_up_that_breaks_on_foreign_history_tells_its_subscribers(
    hub: Hub, client: aioredis.Redis
) -> None:
    """An entry in a channel's history that pushgate did not write (no data field) breaks the
    catch-up's read with a non-Redis error: the subscribers are told, never left waiting."""
    backend = Backend(client, jobs=POLICY)
    recorder = LossRecorder()
    await hub.subscribe("hubtest:foreign", recorder)
    await backend.publish("hubtest:foreign", {"n": 0}, POLICY)
    await recorder.wait_for(1)
    await client.client_kill_filter(_type="pubsub")
    await client.xadd(history_key("hubtest:foreign"), {"not-pushgate": "x"})
    async with asyncio.timeout(WAIT):
        await recorder.told.wait()
    assert hub.channel_count == 0  # given up: a client that comes back subscribes afresh


async def test_a_foreign_message_on_a_channel_is_dropped_and_reading_goes_on(
    hub: Hub, client: aioredis.Redis
) -> None:
    backend = Backend(client, jobs=POLICY)
    recorder = Recorder()
    await hub.subscribe("hubtest:garbage", recorder)
    for garbage in (
        "no spaces",
        "x y z",
        "1-0 not-an-epoch {}",
        "99999999999999999999999-0 1-0 {}",
    ):
        await client.publish(redis_channel("hubtest:garbage"), garbage)
    offset, _ = await backend.publish("hubtest:garbage", {"n": 1}, POLICY)
    # Live, not by the position check (every 10 s), which would also catch it up.
    async with asyncio.timeout(WAIT / 2):
        await recorder.wait_for(1)
    assert recorder.offsets == [offset]
    assert hub.connected


async def test_pubsub_authenticates_when_redis_requires_a_password() -> None:
    server = RedisServer(password="s3cret").start()
    try:
        client = aioredis.Redis.from_url(server.url)
        backend = Backend(client, jobs=POLICY)
        hub = Hub(PubSubConnection(server.url, ping_interval=0.5), backend)
        await started(hub)
        recorder = Recorder()
        await hub.subscribe("hubtest:auth", recorder)
        offset, _ = await backend.publish("hubtest:auth", {"n": 1}, POLICY)
        await recorder.wait_for(1)
        assert recorder.offsets == [offset]
        await hub.stop()
        await client.aclose()

        wrong = PubSubConnection(server.url.replace("s3cret", "wrong"), ping_interval=0.5)
        with pytest.raises(PubSubError, match="AUTH"):
            await wrong.start()
    finally:
        server.stop()


def test_commands_are_encoded_as_resp() -> None:
    assert command("SUBSCRIBE", "pushgate:{chat:é}") == (
        b"*2\r\n$9\r\nSUBSCRIBE\r\n$18\r\npushgate:{chat:\xc3\xa9}\r\n"
    )


async def test_publish_many_is_publish_for_each_item(hub: Hub, client: aioredis.Redis) -> None:
    backend = Backend(client, jobs=POLICY)
    channels = [f"hubtest:many{n % 3}" for n in range(7)]
    recorders = {channel: Recorder() for channel in set(channels)}
    for channel, recorder in recorders.items():
        await hub.subscribe(channel, recorder)
    positions = await backend.publish_many([(c, {"n": n}) for n, c in enumerate(channels)], POLICY)
    assert len(positions) == 7
    for channel, recorder in recorders.items():
        expected = [pos[0] for pos, c in zip(positions, channels, strict=True) if c == channel]
        await recorder.wait_for(len(expected))
        assert recorder.offsets == expected
        history = await backend.history(channel)
        assert [p.offset for p in history] == expected
        assert {p.epoch for p in history} == {positions[channels.index(channel)][1]}
        hub.unsubscribe(channel, recorder)


async def test_a_reconnect_resubscribes_in_batches() -> None:
    server = RedisServer().start()  # its own: the command counts are this test's alone
    connection = PubSubConnection(server.url, ping_interval=0.5)
    client = aioredis.Redis.from_url(server.url)
    wanted = {f"hubtest:batch-{n}" for n in range(1200)}

    async def confirmed(count: int) -> set[str]:
        seen: set[str] = set()
        async with asyncio.timeout(WAIT):
            while len(seen) < count:
                events = await connection.next_events()
                assert not any(isinstance(e, Disconnected) for e in events), events
                seen |= {e.channel for e in events if isinstance(e, Confirmed) and e.subscribed}
        return seen

    try:
        await connection.start()
        for channel in wanted:
            connection.subscribe(channel)
        assert await confirmed(len(wanted)) == wanted
        await client.config_resetstat()
        await client.client_kill_filter(_type="pubsub")
        async with asyncio.timeout(WAIT):
            assert isinstance((await connection.next_events())[0], Disconnected)
        assert await confirmed(len(wanted)) == wanted  # the reconnect subscribed everything
        stats = await client.info("commandstats")
        # 1,200 channels and the control channel: three commands of at most 512 channels.
        assert stats["cmdstat_subscribe"]["calls"] == math.ceil(
            (len(wanted) + 1) / RESUBSCRIBE_BATCH
        )
    finally:
        await connection.close()
        await client.aclose()
        server.stop()


async def test_a_subscribe_whose_position_read_hangs_is_unavailable_and_leaves_no_subscriber(
    hub: Hub,
) -> None:
    """Redis confirmed the subscribe, then the position read got no answer (its Redis stopped,
    SIGSTOP): within the Redis timeout the caller is told unavailable, and the hub holds no
    subscriber and no channel for it."""
    with RedisServer() as stalled:
        client = aioredis.Redis.from_url(stalled.url)
        reads = PositionReads(Backend(client, jobs=POLICY), timeout=5.0)
        assert stalled.process is not None
        stalled.process.send_signal(signal.SIGSTOP)
        try:
            started_at = time.monotonic()
            with pytest.raises(PushgateError) as refused:
                await subscribe_at_newest(hub, reads, "chat:stalled", Recorder(), redis_timeout=0.3)
            seconds = time.monotonic() - started_at
        finally:
            stalled.process.send_signal(signal.SIGCONT)
            await client.aclose()
    assert refused.value.kind is ErrorKind.UNAVAILABLE
    assert seconds < SUBSCRIBE_TIMEOUT  # the read's own bound, not the subscribe's
    assert hub.subscriber_count == 0
    assert hub.channel_count == 0
