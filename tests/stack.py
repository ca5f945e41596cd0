"""Gateway and worker processes started the way users start them: ``uvicorn`` (or ``pushgate
gateway``), and ``arq`` or ``python -m worker``."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

from pushgate.cli.processes import free_port, python_module, spawn, stop

BIN = Path(sys.executable).parent
READY_TIMEOUT = 20.0
ARQ_WORKER = (str(BIN / "arq"), "worker.WorkerSettings")
MODULE_WORKER = tuple(python_module("worker"))


class Gateway:
    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process = process
        self.port = port
        self.http_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"

    def http_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.http_url, timeout=10)


class Stack:
    def __init__(
        self,
        redis_url: str,
        *,
        gateways: int,
        workers: int,
        env: dict[str, str],
        worker_argv: Sequence[str] | None = None,
    ) -> None:
        self.redis_url = redis_url
        self.env = {**os.environ, **env, "PUSHGATE_REDIS_URL": redis_url}
        self._gateway_count = gateways
        self._worker_count = workers
        self._worker_argv = worker_argv
        self.gateways: list[Gateway] = []
        self.workers: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Stack:
        try:
            for _ in range(self._gateway_count):
                self.start_gateway()
            for _ in range(self._worker_count):
                self.start_worker()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start_gateway(
        self, env: dict[str, str] | None = None, log: IO[bytes] | None = None
    ) -> Gateway:
        """Replicas rotate over the three documented forms: ``pushgate gateway`` (its lean
        WebSocket protocol), then uvicorn's app and its factory (uvicorn's own protocol).

        ``env`` overrides the stack's environment for this gateway only; ``log`` gets its output.
        A ``pushgate gateway`` replica drains in no time unless ``env`` says otherwise, so that
        stopping it is as quick as stopping uvicorn.
        """
        form = len(self.gateways) % 3
        if form == 0:
            port = free_port()
            argv = [*self._pushgate_gateway(port), "--log-level", "warning"]
            return self._launch(argv, port, {"PUSHGATE_DRAIN_SECONDS": "0", **(env or {})}, log)
        return self.start_uvicorn_gateway(env, log, factory=form == 2)

    def start_uvicorn_gateway(
        self, env: dict[str, str] | None = None, log: IO[bytes] | None = None, *, factory: bool
    ) -> Gateway:
        """A gateway under plain uvicorn: ``gateway.app:app``, or with ``factory`` its factory."""
        port = free_port()
        target = ["--factory", "gateway.app:create_app"] if factory else ["gateway.app:app"]
        argv = [
            str(BIN / "uvicorn"), *target, "--host", "127.0.0.1", "--port", str(port),
            "--ws-per-message-deflate", "false", "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        return self._launch(argv, port, env, log)

    def start_drainable_gateway(
        self, env: dict[str, str] | None = None, port: int | None = None
    ) -> Gateway:
        """A gateway run by ``pushgate gateway``, the form that drains on SIGTERM; ``port``
        reuses one (a restart in place)."""
        port = port or free_port()
        return self._launch([*self._pushgate_gateway(port), "--log-level", "warning"], port, env)

    @staticmethod
    def _pushgate_gateway(port: int) -> list[str]:
        return [str(BIN / "pushgate"), "gateway", "--host", "127.0.0.1", "--port", str(port)]

    def _launch(
        self,
        argv: list[str],
        port: int,
        env: dict[str, str] | None,
        log: IO[bytes] | None = None,
    ) -> Gateway:
        gateway = Gateway(spawn(argv, env={**self.env, **(env or {})}, log=log), port)
        self.gateways.append(gateway)
        _wait_ready(gateway)
        return gateway

    def start_worker(self) -> subprocess.Popen[bytes]:
        """The stack's worker command, else the two documented ones in turn."""
        argv = self._worker_argv or (ARQ_WORKER, MODULE_WORKER)[len(self.workers) % 2]
        worker = spawn(argv, env=self.env, quiet=True)
        self.workers.append(worker)
        return worker

    @contextlib.contextmanager
    def extra_gateway(self, env: dict[str, str], log: IO[bytes] | None = None) -> Iterator[Gateway]:
        """``start_gateway`` for one test or module: stopped when it is over."""
        gateway = self.start_gateway(env, log)
        try:
            yield gateway
        finally:
            self.stop_gateway(gateway)

    def stop_gateway(self, gateway: Gateway) -> None:
        stop(gateway.process)
        self.gateways.remove(gateway)

    def close(self) -> None:
        for process in [*self.workers, *(g.process for g in self.gateways)]:
            stop(process)


def submit(stack: Stack, url: str, gateway: int = 0, **extra: Any) -> str:
    """POST a job to one of the stack's gateways; returns its request id."""
    body = {"url": url, "request_id": f"e2e-{uuid.uuid4().hex}", **extra}
    response = httpx.post(f"{stack.gateways[gateway].http_url}/jobs", json=body, timeout=10)
    assert response.status_code == 202, response.text
    return str(response.json()["request_id"])


def _wait_ready(gateway: Gateway) -> None:
    wait_until_up(gateway.process, gateway.http_url + "/readyz")


def wait_until_up(
    process: subprocess.Popen[bytes], url: str, timeout: float = READY_TIMEOUT
) -> None:
    """Until GET ``url`` answers 200; RuntimeError if ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer 200 within {timeout:g} s")
        time.sleep(0.05)
