"""What each example's one command starts before its clients talk: ``pushgate dev`` serving
the example's calls, and whatever else it needs (a second gateway, a backend), each stopped
by pid when the example ends. Their logs go to a temporary file, printed if they fail."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pushgate.cli.dev import DEV_DEFAULTS
from pushgate.cli.processes import free_port, python_module, spawn, stop

ROOT = Path(__file__).resolve().parents[1]  # where ``examples`` imports from
READY_TIMEOUT = 60.0


class StartError(RuntimeError):
    """A part of the example did not start; the message holds what it logged."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A server the example started: where it listens."""

    port: int

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


class Processes:
    """The example's servers: started in order, stopped in reverse order, logs in one file."""

    def __init__(self, log: IO[bytes]) -> None:
        self._log = log
        self._running: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], env: Mapping[str, str], ready: str) -> None:
        """Start ``argv`` and wait until GET ``ready`` answers 2xx-4xx."""
        environ = {**os.environ, **env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        process = spawn(argv, env=environ, log=self._log)
        self._running.append(process)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise StartError(f"{name} exited with {process.returncode}:\n{self._logged()}")
            with contextlib.suppress(OSError), urllib.request.urlopen(ready, timeout=1):
                return
            time.sleep(0.1)
        raise StartError(f"{name} not ready at {ready}:\n{self._logged()}")

    def stop_all(self) -> None:
        for process in reversed(self._running):
            stop(process, timeout=30)

    def _logged(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")[-4000:]


@contextlib.contextmanager
def processes() -> Iterator[Processes]:
    with tempfile.NamedTemporaryFile(prefix="pushgate-example-", suffix=".log") as log:
        running = Processes(log)
        try:
            yield running
        finally:
            running.stop_all()


def start_dev(running: Processes, env: Mapping[str, str]) -> Endpoint:
    """``pushgate dev`` (Redis, a gateway, a worker) with ``env`` on top of its defaults."""
    gateway = Endpoint(free_port())
    argv = python_module("pushgate.cli.main", "dev", "--port", str(gateway.port))
    running.start("pushgate dev", argv, env, gateway.http_url + "/readyz")
    return gateway


def start_gateway(running: Processes, env: Mapping[str, str]) -> Endpoint:
    """One more gateway, with what ``pushgate dev`` gives its own (``env`` names the Redis)."""
    gateway = Endpoint(free_port())
    argv = python_module("pushgate.cli.main", "gateway", "--port", str(gateway.port))
    running.start("second gateway", argv, {**DEV_DEFAULTS, **env}, gateway.http_url + "/readyz")
    return gateway


def start_app(running: Processes, app: str, ready_path: str) -> Endpoint:
    """An ASGI app of the example under uvicorn."""
    server = Endpoint(free_port())
    argv = python_module("uvicorn", app, "--port", str(server.port), "--log-level", "warning")
    running.start(app, argv, {}, server.http_url + ready_path)
    return server


def say(line: str) -> None:
    print(line, flush=True)


def main_of(run: Callable[[], None]) -> None:
    """Run an example; exit 1 with what went wrong when its servers did not start."""
    try:
        run()
    except StartError as exc:
        print(f"the example could not start: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
