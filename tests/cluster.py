"""A real local Redis Cluster for the tests: three masters on free loopback ports, joined with
``redis-cli --cluster create``, stopped by pid; and the moves the fault tests make on it (moving
one slot to another master, killing a master)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

import redis

from pushgate.cli.processes import free_port
from pushgate.cli.redis_server import RedisServer

READY_TIMEOUT = 20.0
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
    """``start()`` brings up ``masters`` masters (no replicas) covering every slot."""

    def __init__(self, masters: int = 3) -> None:
        self.servers = [
            RedisServer(port=_cluster_port(), extra_args=_CLUSTER_ARGS) for _ in range(masters)
        ]
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
            [_redis_cli(), "--cluster", "create", *addresses, "--cluster-replicas", "0",
             "--cluster-yes"],
            check=True, capture_output=True, timeout=READY_TIMEOUT,
        )  # fmt: skip
        self.wait_until_agreed()
        return self

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

    def alive(self) -> list[int]:
        return [s.port for s in self.servers if s.process is not None and s.process.poll() is None]

    def wait_until_agreed(self) -> None:
        """Until every live node says cluster_state:ok and they all see the same slot owners."""
        deadline = time.monotonic() + READY_TIMEOUT
        for _ in range(int(READY_TIMEOUT / POLL) + 1):
            if self._agreed():
                return
            if time.monotonic() > deadline:
                break
            time.sleep(POLL)
        raise AssertionError("the cluster did not settle")

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
