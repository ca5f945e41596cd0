"""A throwaway Sentinel group on free loopback ports: a master, its replicas and the sentinels
that watch them, each its own ``redis-server`` process (the tests; see README, "The queue on
Sentinel").
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

from pushgate.cli.processes import free_port, spawn, stop
from pushgate.cli.redis_server import START_TIMEOUT, RedisServer, find_redis_server

HOST = "127.0.0.1"


class Sentinel:
    """One ``redis-server <conf> --sentinel``; the conf is its own (sentinels rewrite it)."""

    def __init__(self, conf: str) -> None:
        self.port = free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="pushgate-sentinel-")
        self._conf = Path(self._dir.name) / "sentinel.conf"
        self._conf.write_text(f"port {self.port}\nbind {HOST}\ndir {self._dir.name}\n{conf}")
        self.process: subprocess.Popen[bytes] | None = None

    def client(self) -> redis.Redis:
        return redis.Redis(HOST, self.port, socket_timeout=1, decode_responses=True)

    def start(self) -> Sentinel:
        self.process = spawn([find_redis_server(), str(self._conf), "--sentinel"], quiet=True)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
        self._dir.cleanup()


class SentinelGroup:
    """``start()`` a master, ``replicas`` replicas (``replicaof``) and ``sentinels`` sentinels
    (quorum: a majority); ``stop()`` ends them all by pid. ``url`` is the
    ``redis+sentinel://`` URL of the group, ``down_after_ms`` and ``failover_timeout_ms`` are
    kept low so that a failover takes a few seconds.
    """

    def __init__(
        self,
        master_name: str = "pushgate",
        *,
        replicas: int = 1,
        sentinels: int = 3,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
    ) -> None:
        self.master_name = master_name
        # Redis waits 5 s by default before a full sync, for more replicas to join: a replica
        # (a demoted master too) would then be of no use for that long.
        sync_now = ["--repl-diskless-sync-delay", "0"]
        self.master = RedisServer(options=sync_now)
        replica_of = [*sync_now, "--replicaof", HOST, str(self.master.port)]
        self.replicas = [RedisServer(options=replica_of) for _ in range(replicas)]
        name = master_name
        conf = (
            f"sentinel monitor {name} {HOST} {self.master.port} {sentinels // 2 + 1}\n"
            f"sentinel down-after-milliseconds {name} {down_after_ms}\n"
            f"sentinel failover-timeout {name} {failover_timeout_ms}\n"
            f"sentinel parallel-syncs {name} 1\n"
        )
        self.sentinels = [Sentinel(conf) for _ in range(sentinels)]
        hosts = ",".join(f"{HOST}:{sentinel.port}" for sentinel in self.sentinels)
        self.url = f"redis+sentinel://{hosts}/{master_name}"

    def start(self) -> SentinelGroup:
        try:
            for server in [self.master, *self.replicas]:
                server.start()
            for sentinel in self.sentinels:
                sentinel.start()
            self._wait(self._ready, "sentinels that see every replica and each other")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for server in [*self.replicas, self.master]:
            server.stop()

    def master_address(self) -> tuple[str, int]:
        """Where the first sentinel that answers says the master is."""
        for sentinel in self.sentinels:
            try:
                with sentinel.client() as client:
                    host, port = client.execute_command(
                        "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name
                    )
                return str(host), int(port)
            except redis.ConnectionError:
                continue
        raise RuntimeError("no sentinel answers")

    def failover(self) -> tuple[str, int]:
        """``SENTINEL FAILOVER``, then wait until every sentinel names a new master; returns it."""
        old = self.master_address()
        with self.sentinels[0].client() as client:
            client.execute_command("SENTINEL", "FAILOVER", self.master_name)

        def switched() -> bool:
            return all(self._named_master(s) not in (None, old) for s in self.sentinels)

        self._wait(switched, "every sentinel names the new master")
        return self.master_address()

    def server_at(self, address: tuple[str, int]) -> RedisServer:
        """The group's server listening on ``address``."""
        return next(s for s in [self.master, *self.replicas] if (HOST, s.port) == address)

    def _named_master(self, sentinel: Sentinel) -> tuple[str, int] | None:
        try:
            with sentinel.client() as client:
                host, port = client.execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name
                )
        except redis.ConnectionError:
            return None
        return str(host), int(port)

    def _ready(self) -> bool:
        for replica in self.replicas:
            with redis.Redis(HOST, replica.port, socket_timeout=1, decode_responses=True) as client:
                if client.info("replication").get("master_link_status") != "up":
                    return False
        for sentinel in self.sentinels:
            try:
                with sentinel.client() as client:
                    state = client.execute_command("SENTINEL", "MASTER", self.master_name)
            except redis.ConnectionError:
                return False
            fields = dict(zip(state[::2], state[1::2], strict=True))
            if int(fields["num-slaves"]) < len(self.replicas):
                return False
            if int(fields["num-other-sentinels"]) < len(self.sentinels) - 1:
                return False
        return True

    def _wait(self, check: Callable[[], bool], what: str) -> None:
        # Sentinels find replicas (INFO, every 10 s) and each other (hello messages, every 2 s).
        deadline = time.monotonic() + START_TIMEOUT + 20
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(f"sentinel group: not in time: {what}")
            for part in self.sentinels:
                if part.process is not None and part.process.poll() is not None:
                    raise RuntimeError(f"a sentinel exited with {part.process.returncode}")
            time.sleep(0.1)
