"""A real local Redis Cluster for the tests: three masters on free loopback ports, joined with
``redis-cli --cluster create``, stopped by pid; and the moves the fault tests make on it (moving
one slot to another master, killing a master)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import redis
from redis.exceptions import RedisError

from pushgate.broker.cluster_pubsub import ClusterEvent, ClusterPubSub, Resubscribed
from pushgate.broker.cluster_store import ClusterStore, cluster_client
from pushgate.broker.keys import redis_channel
from pushgate.broker.pubsub import Confirmed
from pushgate.broker.store import Backend, HistoryPolicy
from pushgate.cli.processes import free_port
from pushgate.cli.redis_server import RedisServer
from pushgate.core.wire import OffsetKey, Publication

READY_TIMEOUT = 20.0
CATCH_UP_TRIES = 40  # POLL apart: a restarted master may refuse for a while
_BUS_OFFSET = 10000
POLL = 0.05
# The survivors of a killed master keep serving their own slots.
_CLUSTER_ARGS = (
    "--cluster-enabled", "yes",
    "--cluster-config-file", "nodes.conf",
    "--cluster-require-full-coverage", "no",
)  # fmt: skip


def _client(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, decode_responses=True)


class LocalCluster:
    """``start()`` brings up ``masters`` masters covering every slot, each with ``replicas``
    replicas (a replica takes over a master that is down for ``node_timeout`` ms)."""

    def __init__(self, masters: int = 3, replicas: int = 0, node_timeout: int = 15000) -> None:
        options = (
            *_CLUSTER_ARGS,
            "--cluster-node-timeout", str(node_timeout),
            "--repl-diskless-sync-delay", "0",  # a replica in sync at once, able to take over
        )  # fmt: skip
        self.servers = [
            RedisServer(port=_cluster_port(), options=options)
            for _ in range(masters * (1 + replicas))
        ]
        self._replicas = replicas
        self._clients: dict[int, redis.Redis] = {}

    @property
    def ports(self) -> list[int]:
        return [server.port for server in self.servers]

    @property
    def url(self) -> str:
        """A seed node's URL (any node serves the whole map)."""
        return f"redis://127.0.0.1:{self.ports[0]}"

    def client(self, port: int) -> redis.Redis:
        """A plain (non-cluster) client of one node."""
        if port not in self._clients:
            self._clients[port] = _client(port)
        return self._clients[port]

    def start(self) -> LocalCluster:
        for server in self.servers:
            server.start()
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(
            [_redis_cli(), "--cluster", "create", *addresses,
             "--cluster-replicas", str(self._replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=READY_TIMEOUT,
        )  # fmt: skip
        self.wait_until_agreed()
        self._wait(self._replicas_synced, "the replicas to sync")
        return self

    def _replicas_synced(self) -> bool:
        infos: list[dict[str, Any]] = [
            self.client(port).info("replication")  # type: ignore[misc]  # sync client: a dict
            for port in self.alive()
        ]
        replicas = [info for info in infos if info["role"] == "slave"]
        wanted = len(self.servers) - len(self.servers) // (1 + self._replicas)
        return len(replicas) == wanted and all(i["master_link_status"] == "up" for i in replicas)

    def wait_for_failover(self, dead: int) -> None:
        """Until a replica has taken the slots of master ``dead`` over and the cluster agrees."""
        self._wait(lambda: dead not in self.masters(), f"a replica to take over {dead}")
        self.wait_until_agreed()

    def stop(self) -> None:
        for client in self._clients.values():
            client.close()
        for server in self.servers:
            server.stop()

    def command(self, port: int, *args: str | int) -> Any:
        return self.client(port).execute_command(*args)  # type: ignore[no-untyped-call]

    def node_id(self, port: int) -> str:
        return str(self.command(port, "CLUSTER", "MYID"))

    def slot(self, key: str) -> int:
        """The slot Redis itself computes for ``key``."""
        return int(self.command(self.ports[0], "CLUSTER", "KEYSLOT", key))

    def owner(self, slot: int, asked: int | None = None) -> int:
        """The port of the master owning ``slot``, in the view of node ``asked``."""
        for first, last, master, *_ in self.command(asked or self.ports[0], "CLUSTER", "SLOTS"):
            if first <= slot <= last:
                return int(master[1])
        raise AssertionError(f"slot {slot} is not covered")

    def masters(self) -> list[int]:
        """The ports of the masters owning slots now, in the view of a live node."""
        asked = self.alive()[0]
        return sorted({int(m[1]) for _a, _b, m, *_ in self.command(asked, "CLUSTER", "SLOTS")})

    def spread(self, prefix: str, per_master: int = 2) -> dict[int, list[str]]:
        """Channel names, ``per_master`` owned by each master (by Redis's own KEYSLOT)."""
        owned: dict[int, list[str]] = {port: [] for port in self.masters()}
        for i in range(1000):
            channel = f"{prefix}{i}"
            port = self.owner(self.slot(redis_channel(channel)))
            if len(owned[port]) < per_master:
                owned[port].append(channel)
            if all(len(names) == per_master for names in owned.values()):
                return owned
        raise AssertionError("could not spread channels over every master")

    def alive(self) -> list[int]:
        return [s.port for s in self.servers if s.process is not None and s.process.poll() is None]

    def wait_until_agreed(self) -> None:
        """Until every live node says cluster_state:ok and they all see the same slot owners."""
        self._wait(self._agreed, "the cluster to settle")

    @staticmethod
    def _wait(check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        for _ in range(int(READY_TIMEOUT / POLL) + 1):
            if check():
                return
            if time.monotonic() > deadline:
                break
            time.sleep(POLL)
        raise AssertionError(f"timed out waiting for {what}")

    def _agreed(self) -> bool:
        views = []
        for port in self.alive():
            info = str(self.command(port, "CLUSTER", "INFO"))
            if "cluster_state:ok" not in info:
                return False
            views.append(
                sorted((a, b, m[1]) for a, b, m, *_ in self.command(port, "CLUSTER", "SLOTS"))
            )
        return all(view == views[0] for view in views)

    def move_slot(self, slot: int, to: int, *, between: Callable[[], None] | None = None) -> None:
        """Move ``slot`` to master ``to`` as ``redis-cli --cluster reshard`` does: IMPORTING and
        MIGRATING, MIGRATE of each key, then SETSLOT NODE everywhere. ``between`` runs once the
        keys have moved and before the ownership does (the window where writes are ASKed)."""
        source = self.owner(slot)
        source_id, target_id = self.node_id(source), self.node_id(to)
        self.command(to, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        self.command(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        for _ in range(10_000):  # bounded: each round moves up to 100 keys
            keys = self.command(source, "CLUSTER", "GETKEYSINSLOT", slot, 100)
            if not keys:
                break
            self.command(source, "MIGRATE", "127.0.0.1", to, "", 0, 5000, "KEYS", *keys)
        if between is not None:
            between()
        for port in (to, source, *[p for p in self.alive() if p not in (to, source)]):
            self.command(port, "CLUSTER", "SETSLOT", slot, "NODE", target_id)
        self.wait_until_agreed()

    def restart(self, port: int) -> None:
        """Start a killed master again on its port and directory: it keeps its node id and
        slots (nodes.conf), not its data (nothing is persisted)."""
        next(s for s in self.servers if s.port == port).start()
        self.wait_until_agreed()

    def kill(self, port: int) -> None:
        """SIGKILL one master, by pid."""
        server = next(s for s in self.servers if s.port == port)
        assert server.process is not None
        server.process.kill()
        server.process.wait()
        client = self._clients.pop(port, None)
        if client is not None:
            client.close()


def _cluster_port() -> int:
    """A free port whose cluster bus port (itself + 10000) is free too."""
    for _ in range(100):
        port = free_port()
        if port + _BUS_OFFSET > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + _BUS_OFFSET))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def _redis_cli() -> str:
    found = shutil.which("redis-cli")
    if found is None:
        raise RuntimeError("redis-cli is not on PATH: the cluster tests need it")
    return found


class Consumer:
    """Reads a ClusterPubSub as the hub would: each channel's publications once and in offset
    order, reading the history after its last offset whenever the live stream had a gap (a
    ``Resubscribed``, or a ``Confirmed`` resubscription of a channel already live)."""

    def __init__(self, reader: ClusterPubSub, store: Backend) -> None:
        self.reader = reader
        self.store = store
        self.offsets: dict[str, list[str]] = {}
        self.from_history: dict[str, int] = {}
        self.lost: set[str] = set()  # the history no longer covered a gap: told, not silent
        self.events: list[ClusterEvent] = []  # everything but publications, in order
        self.seen_at: list[float] = []  # when each of ``events`` arrived (monotonic)
        self.live: set[str] = set()
        self._last: dict[str, OffsetKey] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            for event in await self.reader.next_events():
                await self._handle(event)

    async def _handle(self, event: ClusterEvent) -> None:
        if isinstance(event, Publication):
            self._take(event)
            return
        self.events.append(event)
        self.seen_at.append(time.monotonic())
        if isinstance(event, Resubscribed) or (
            isinstance(event, Confirmed) and event.subscribed and event.channel in self.live
        ):
            await self._catch_up(event.channel)
        if isinstance(event, Confirmed):
            (self.live.add if event.subscribed else self.live.discard)(event.channel)

    def _take(self, publication: Publication, *, replayed: bool = False) -> None:
        channel = publication.channel
        last = self._last.get(channel)
        if last is not None and publication.key <= last:
            return  # already had it (live and replayed overlap)
        self._last[channel] = publication.key
        self.offsets.setdefault(channel, []).append(publication.offset)
        if replayed:
            self.from_history[channel] = self.from_history.get(channel, 0) + 1

    async def _catch_up(self, channel: str) -> None:
        last = self._last.get(channel)
        after = None if last is None else "{}-{}".format(*last)
        for _ in range(CATCH_UP_TRIES):  # as the hub: a master just back may refuse at first
            try:
                replay = await self.store.replay(channel, after=after, since_epoch=None)
                break
            except RedisError:
                await asyncio.sleep(POLL)
        else:
            self.lost.add(channel)
            return
        if after is not None and not replay.recovered:
            self.lost.add(channel)
        for publication in replay.publications:
            self._take(publication, replayed=True)

    async def until(self, check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        """Wait (bounded) until ``check()`` holds."""
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / POLL) + 1):
            if check():
                return
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(POLL)
        raise AssertionError(f"timed out waiting for {what}")

    def confirmed(self, channels: Iterable[str]) -> bool:
        return set(channels) <= self.live


@contextlib.asynccontextmanager
async def consuming(cluster: LocalCluster, policy: HistoryPolicy) -> AsyncIterator[Consumer]:
    """A started reader, store and Consumer on ``cluster``, closed after."""
    client = cluster_client(cluster.url)
    reader = ClusterPubSub(cluster.url, ping_interval=0.5)
    await reader.start()
    store = ClusterStore(client, jobs=policy)
    assert await store.ping()  # the client learns every master now, not from a dead seed later
    running = Consumer(reader, store)
    running.start()
    try:
        yield running
    finally:
        await running.stop()
        await reader.close()
        await client.aclose()
