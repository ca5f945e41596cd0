"""``pushgate dev``: Redis (embedded unless configured), one gateway and one worker, supervised.

Ctrl-C (or SIGTERM) stops the worker, then the gateway, then Redis; if any child dies, the
rest are stopped too. Children run in their own sessions and die with us even on SIGKILL.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from types import FrameType

from pushgate.cli.processes import python_module, spawn, stop
from pushgate.cli.redis_server import RedisServer

READY_TIMEOUT = 30.0
AUTH_OFF_NOTE = "OFF: anyone can connect, subscribe and publish (development only)"
# Development only: no authentication, a chat namespace for the /chat page, and a gateway that
# stops at once (no clients of other replicas to spare).
DEV_DEFAULTS = {
    "PUSHGATE_AUTH_DISABLED": "true",
    "PUSHGATE_DRAIN_SECONDS": "0",
    "PUSHGATE_NAMESPACES": json.dumps(
        {"chat": {"publish": True, "history_size": 100, "history_ttl": 3600}}
    ),
}
# Longer than the worker's default shutdown grace, so running jobs can finish.
STOP_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class DevOptions:
    """Where ``pushgate dev`` serves its gateway."""

    host: str = "127.0.0.1"
    port: int = 8000


class _StopRequestedError(Exception):
    pass


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise _StopRequestedError(signal.Signals(signum).name)


def run_dev(options: DevOptions, environ: Mapping[str, str]) -> int:
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    embedded: RedisServer | None = None
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        env = {**DEV_DEFAULTS, **environ}
        if not env.get("PUSHGATE_REDIS_URL"):
            embedded = RedisServer(quiet=True).start()
            env["PUSHGATE_REDIS_URL"] = embedded.url
        children.append(("gateway", spawn(_gateway_argv(options), env=env)))
        children.append(("worker", spawn(python_module("worker"), env=env)))
        _wait_ready(options, children)
        _print_banner(options, env, embedded is not None)
        return _supervise(children)
    except _StopRequestedError as stopped:
        print(f"\npushgate dev: {stopped}, stopping", file=sys.stderr)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not orphan anything
        for _name, process in reversed(children):
            stop(process, timeout=STOP_TIMEOUT)
        if embedded is not None:
            embedded.stop()


def _gateway_argv(options: DevOptions) -> list[str]:
    return python_module(
        "pushgate.cli.main", "gateway", "--host", options.host, "--port", str(options.port)
    )


def _wait_ready(options: DevOptions, children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    url = f"http://{options.host}:{options.port}/readyz"
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        _check_children(children)
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"pushgate dev: gateway not ready at {url} after {READY_TIMEOUT:.0f} s")


def _check_children(children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    for name, process in children:
        if process.poll() is not None:
            raise SystemExit(f"pushgate dev: {name} exited with code {process.returncode}")


def _supervise(children: list[tuple[str, subprocess.Popen[bytes]]]) -> int:
    while True:
        _check_children(children)
        time.sleep(0.2)


def _print_banner(options: DevOptions, env: Mapping[str, str], embedded: bool) -> None:
    redis_url = env["PUSHGATE_REDIS_URL"]
    base = f"http://{options.host}:{options.port}"
    ws = f"ws://{options.host}:{options.port}"
    guard = env.get("PUSHGATE_ALLOW_PRIVATE_ADDRESSES", "false")
    auth_off = env.get("PUSHGATE_AUTH_DISABLED", "").lower() in ("1", "true", "yes", "on")
    routes, proxy = env.get("PUSHGATE_RPC_ROUTES"), env.get("PUSHGATE_RPC_PROXY_URL")
    rpc = f"routes {routes}" if routes else f"proxy to {proxy}" if proxy else "no routes"
    print(
        f"""
pushgate dev is running (Ctrl-C stops everything)
  redis    {redis_url}{" (embedded, nothing kept on disk)" if embedded else ""}
  gateway  {base}   health: {base}/healthz   ready: {base}/readyz
  worker   1 process (private addresses allowed: {guard})
  auth     {AUTH_OFF_NOTE if auth_off else "on"}
  rpc      {rpc}

Try it:
  curl -s -X POST {base}/jobs -d '{{"url": "https://example.com/"}}'
  then watch the events on {ws}/ws/jobs/<request_id>
  or poll {base}/jobs/<request_id>
""",
        flush=True,
    )
