"""What the gateway fault tests share: a Redis they may SIGKILL and start again, a publisher that
keeps going through outages, subscribers that record what they got, and the invariant's ledger.

The invariant (docs/protocol.md, "Delivery"): a subscriber gets each publication of its channel
once and in order, or is told it missed something. ``Ledger.check`` counts, per subscriber, the
acknowledged publications it never got although nothing told it (lost), the ones it got twice
(duplicated) and the ones out of order.
"""

from __future__ import annotations

import asyncio
import itertools
import resource
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, asynccontextmanager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from gateway.delivery.hub import Hub
from pushgate.broker import jobqueue
from pushgate.broker.pubsub import PubSubConnection
from pushgate.broker.shards import ShardedStore
from pushgate.broker.store import Backend, HistoryPolicy
from pushgate.cli.processes import free_port, spawn, stop
from pushgate.cli.redis_server import find_redis_server
from pushgate.client import Position, PushgateClient, Subscription
from pushgate.core.redis_url import is_cluster_url, is_sentinel_url
from pushgate.core.wire import OffsetKey, parse_offset
from tests.conftest import OPEN_ENV
from tests.stack import MODULE_WORKER, Stack

WAIT = 30.0
POLICY = HistoryPolicy(size=1000, ttl=3600)


def report(request: pytest.FixtureRequest, title: str, rows: Sequence[tuple[str, object]]) -> None:
    """Print a test's figures as a two-column table on the terminal, past output capture."""
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    width = max(len(name) for name, _ in rows)
    lines = [f"== {title}", *(f"  {name:<{width}}  {value}" for name, value in rows)]
    with capture.global_and_fixture_disabled() if capture else nullcontext():
        if reporter is None:  # pragma: no cover - only without pytest's terminal plugin
            print("\n".join(lines))
            return
        reporter.write("\n")  # after the progress dots
        for line in lines:
            reporter.write_line(line)


async def until(condition: Callable[[], object], seconds: float = WAIT) -> float:
    """Seconds until ``condition()`` holds; TimeoutError after ``seconds``."""
    started = time.monotonic()
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.01)
    return time.monotonic() - started


@asynccontextmanager
async def running_hub(
    redis_url: str, backend: Backend, *, redis_timeout: float = 1.5, position_check: float = 10.0
) -> AsyncIterator[Hub]:
    """An in-process hub on ``redis_url`` (its history reads go to ``backend``), connected."""
    connection = PubSubConnection(redis_url, ping_interval=0.5)
    hub = Hub(connection, backend, redis_timeout=redis_timeout, position_check=position_check)
    await hub.start()
    try:
        await until(lambda: hub.connected)
        yield hub
    finally:
        await hub.stop()


def tiny_socket(port: int) -> socket.socket:
    """A connected client socket whose receive buffer stays at 4 KiB, so that a client that
    stops reading pushes back on the gateway after kilobytes, not megabytes."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


def raise_fd_limit(needed: int) -> None:
    """Lift the soft open-files limit to ``needed`` (bounded by the hard limit); child processes
    started afterwards inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


class KillableRedis:
    """A redis-server on a fixed loopback port that a test may SIGKILL and start again, without
    persistence or with an append-only file in a directory of its own."""

    def __init__(self, *, appendonly: bool) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._appendonly = appendonly
        self._dir = tempfile.TemporaryDirectory(prefix="pushgate-faults-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> KillableRedis:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"]
        argv = [
            find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            *(persistence if self._appendonly else ["--appendonly", "no"]),
            "--dir", self._dir.name,
        ]  # fmt: skip
        self.process = spawn(argv, quiet=True)
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        deadline = time.monotonic() + WAIT
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no save."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
        self._dir.cleanup()


@contextmanager
def killable_redis(*, appendonly: bool = False) -> Iterator[KillableRedis]:
    server = KillableRedis(appendonly=appendonly).start()
    try:
        yield server
    finally:
        server.stop()


FAULT_ENV = {
    **OPEN_ENV,
    "PUSHGATE_NAMESPACES": '{"chat": {"publish": true, "history_size": 1000}}',
}


@contextmanager
def gateways(redis_url: str, count: int, env: dict[str, str] | None = None) -> Iterator[Stack]:
    """``count`` gateway replicas (no workers) on ``redis_url``."""
    with Stack(redis_url, gateways=count, workers=0, env={**FAULT_ENV, **(env or {})}) as stack:
        yield stack


@contextmanager
def killable_shards(count: int) -> Iterator[list[KillableRedis]]:
    """``count`` standalone broker shards, each a KillableRedis without persistence."""
    with ExitStack() as servers:
        yield [servers.enter_context(killable_redis()) for _ in range(count)]


def broker_env(shards: Sequence[KillableRedis]) -> dict[str, str]:
    return {"PUSHGATE_BROKER_URLS": ",".join(shard.url for shard in shards)}


@contextmanager
def sharded_stack(
    queue_url: str,
    shards: Sequence[KillableRedis],
    *,
    gateways: int,
    workers: int,
    env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """``pushgate gateway`` replicas and ``python -m worker`` workers with the queue on
    ``queue_url`` and the broker plane on ``shards``; they may fetch loopback pages."""
    full = {**FAULT_ENV, "PUSHGATE_ALLOW_PRIVATE_ADDRESSES": "true", **broker_env(shards)}
    full.update(env or {})
    with Stack(queue_url, gateways=0, workers=0, env=full, worker_argv=MODULE_WORKER) as stack:
        for _ in range(gateways):
            stack.start_drainable_gateway()
        for _ in range(workers):
            stack.start_worker()
        yield stack


def key(offset: str) -> OffsetKey:
    return parse_offset(offset)


@dataclass(frozen=True, slots=True)
class Acked:
    channel: str
    epoch: str
    offset: str
    n: int
    at: float  # time.monotonic() when Redis acknowledged it


def store_on(urls: Sequence[str]) -> ShardedStore:
    """The broker plane over ``urls`` (one per shard, in order; or one ``redis+cluster://``
    URL), as gateways and workers see it, with clients whose calls fail within a second while
    their Redis is down."""
    if len(urls) == 1 and is_cluster_url(urls[0]):
        return ShardedStore.on_cluster(urls[0], POLICY, socket_timeout=1)
    return ShardedStore.over([(url, _client(url)) for url in urls], POLICY, owned=True)


def _client(url: str) -> aioredis.Redis:
    client: aioredis.Redis = (
        jobqueue.connect(url, socket_timeout=1)  # follows the master the sentinels name
        if is_sentinel_url(url)
        else aioredis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    )
    return client


class Publisher:
    """Publishes ``{"n": i}`` round-robin over ``channels`` at ``rate`` per second through every
    outage: a publication counts once Redis acknowledged it; failed ones are retried later.
    ``redis_url`` is one Redis, the broker shards' URLs (each channel on its own shard), or a
    ``redis+cluster://`` URL."""

    def __init__(
        self,
        redis_url: str | Sequence[str],
        channels: Sequence[str],
        *,
        rate: float,
        pad: Mapping[str, int] | None = None,
        replicas: int = 0,
    ) -> None:
        """``replicas``: a publication counts only once that many replicas have it (WAIT)."""
        self._pad = dict(pad or {})  # bytes of padding in each publication, per channel
        self._replicas = replicas
        self._backend = store_on([redis_url] if isinstance(redis_url, str) else redis_url)
        self._channels = list(channels)
        self._period = 1.0 / rate
        self.acked: list[Acked] = []
        self.failures = 0
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Publisher:
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        n = 0
        while not self._stopping:
            channel = self._channels[n % len(self._channels)]
            data: dict[str, Any] = {"n": n}
            if self._pad.get(channel):
                data["pad"] = "x" * self._pad[channel]
            try:
                offset, epoch = await self._backend.publish(channel, data, POLICY)
                shard = self._backend.shards[self._backend.shard_of(channel)]
                if isinstance(shard.redis, aioredis.Redis):  # not on a cluster (no replicas)
                    await jobqueue.wait_for_replicas(shard.redis, self._replicas, 1.0)
            except (redis.RedisError, OSError):
                self.failures += 1
            else:
                self.acked.append(Acked(channel, epoch, offset, n, time.monotonic()))
            n += 1
            await asyncio.sleep(self._period)

    def of(self, channel: str) -> list[Acked]:
        return [a for a in self.acked if a.channel == channel]

    async def wait_acked(self, count: int) -> None:
        async with asyncio.timeout(WAIT):
            while len(self.acked) < count:
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        # A flag as well as a cancel: redis-py can swallow a cancellation that lands while its
        # connection is being killed, and the loop would then go on.
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=WAIT)
        await self._backend.aclose()


@dataclass
class Recovery:
    recovered: bool
    position: Position
    last: tuple[str, str] | None  # (epoch, offset) of the last publication got before it
    at: float


@dataclass
class Watcher:
    """One client subscription's record: every publication it yielded, every recovery answer."""

    channel: str
    subscription: Subscription | None = None
    got: list[tuple[str, str, int]] = field(default_factory=list)  # (epoch, offset, n)
    recoveries: list[Recovery] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def on_recovery(self, subscription: Subscription) -> None:
        assert subscription.recovered is not None and subscription.position is not None
        last = (self.got[-1][0], self.got[-1][1]) if self.got else None
        recovery = Recovery(subscription.recovered, subscription.position, last, time.monotonic())
        self.recoveries.append(recovery)

    async def _collect(self) -> None:
        assert self.subscription is not None
        async for publication in self.subscription:
            self.got.append((publication.epoch, publication.offset, int(publication.data["n"])))

    def follow(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self.task = asyncio.create_task(self._collect())

    @property
    def unrecovered(self) -> list[Recovery]:
        return [r for r in self.recoveries if not r.recovered]


@dataclass(frozen=True, slots=True)
class Verdict:
    lost: int = 0
    duplicated: int = 0
    disordered: int = 0
    told: int = 0  # `recovered: false` answers

    def __add__(self, other: Verdict) -> Verdict:
        return Verdict(
            self.lost + other.lost,
            self.duplicated + other.duplicated,
            self.disordered + other.disordered,
            self.told + other.told,
        )


def _excused(acked: Acked, recoveries: list[Recovery]) -> bool:
    """Whether a `recovered: false` answer covers ``acked``: after the last publication got
    before that answer, and not after the position the answer resumed from."""
    for recovery in recoveries:
        last = recovery.last
        after_last = last is None or acked.epoch != last[0] or key(acked.offset) > key(last[1])
        resumed = recovery.position
        before_resume = acked.epoch != resumed.epoch or (
            bool(resumed.offset) and key(acked.offset) <= key(resumed.offset)
        )
        if after_last and before_resume:
            return True
    return False


def check(watcher: Watcher, acked: list[Acked], *, since: tuple[str, str] | None = None) -> Verdict:
    """The invariant for one subscriber: ``acked`` are its channel's acknowledged publications,
    ``since`` where it subscribed from (None: all of ``acked`` are due)."""
    got = [(epoch, offset) for epoch, offset, _n in watcher.got]
    seen = set(got)
    due = [
        a for a in acked if since is None or a.epoch != since[0] or key(a.offset) > key(since[1])
    ]
    unrecovered = watcher.unrecovered
    lost = sum(1 for a in due if (a.epoch, a.offset) not in seen and not _excused(a, unrecovered))
    disordered = 0
    for (epoch_a, offset_a), (epoch_b, offset_b) in itertools.pairwise(got):
        if epoch_a == epoch_b and key(offset_b) <= key(offset_a):
            disordered += 1
    return Verdict(lost, len(got) - len(seen), disordered, len(unrecovered))


def rotating(urls: Sequence[str]) -> Any:
    """A client's URL source that moves to the next replica on every (re)connection."""
    turn = iter(range(1 << 30))

    def next_url() -> str:
        return urls[next(turn) % len(urls)]

    return next_url


async def watch(
    client: PushgateClient, watcher: Watcher, *, since: Position | None = None
) -> Watcher:
    watcher.follow(await client.subscribe(watcher.channel, since=since))
    return watcher


async def settle(watchers: Sequence[Watcher], publisher: Publisher) -> bool:
    """Wait (bounded) until every watcher has got its channel's newest acknowledged publication;
    False if some had not by then (``check`` then counts what they lack)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        # The newest acknowledged, not the newest got: a publication whose answer was lost
        # (its connection killed) may come after it.
        newest = {a.channel: (a.epoch, a.offset) for a in publisher.acked}
        if all(newest.get(w.channel) in {(e, o) for e, o, _n in w.got} for w in watchers):
            return True
        await asyncio.sleep(0.05)
    return False


async def stop_watchers(watchers: Sequence[Watcher]) -> None:
    for watcher in watchers:
        if watcher.task is not None:
            watcher.task.cancel()
    await asyncio.gather(*(w.task for w in watchers if w.task), return_exceptions=True)
