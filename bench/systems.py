"""The systems under test, each started the way its users start it, on its own fresh Redis."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.procs import VENV_BIN, Child, Children, wait_http_ok
from pushgate.cli.processes import free_port
from pushgate.cli.redis_server import RedisServer

REPO = Path(__file__).resolve().parent.parent
JS_DIR = Path(__file__).parent / "js"

PUSHGATE = "pushgate"  # `pushgate gateway`: its lean WebSocket protocol
PUSHGATE_UVICORN = "pushgate-uvicorn"  # `uvicorn gateway.app:app`: uvicorn's websockets-sansio
BROADCASTER = "broadcaster"
SOCKETIO = "socketio"
SYSTEMS = (PUSHGATE, PUSHGATE_UVICORN, BROADCASTER, SOCKETIO)
OURS = (PUSHGATE, PUSHGATE_UVICORN)
PEERS = (BROADCASTER, SOCKETIO)
LABELS = {
    PUSHGATE: "pushgate",
    PUSHGATE_UVICORN: "pushgate (uvicorn's ws)",
    BROADCASTER: "broadcaster (Starlette)",
    SOCKETIO: "Socket.IO (Node)",
}


def wire(system: str) -> str:
    """The protocol a system's clients and publisher speak: both pushgate forms speak pushgate's."""
    return PUSHGATE if system in OURS else system


NAMESPACE = "bench"
HISTORY_SIZE = 100
HISTORY_TTL = 600


def pushgate_env(redis_url: str, broker_urls: Sequence[str] = ()) -> dict[str, str]:
    """The gateway's settings for the benchmark: no auth, a `bench` namespace, no low caps;
    with ``broker_urls``, channels sharded over those Redis servers (the queue stays on
    ``redis_url``)."""
    namespaces = {
        NAMESPACE: {"publish": True, "history_size": HISTORY_SIZE, "history_ttl": HISTORY_TTL}
    }
    sharded = {"PUSHGATE_BROKER_URLS": ",".join(broker_urls)} if broker_urls else {}
    return {
        **sharded,
        "PUSHGATE_REDIS_URL": redis_url,
        "PUSHGATE_AUTH_DISABLED": "true",
        "PUSHGATE_NAMESPACES": json.dumps(namespaces),
        "PUSHGATE_MAX_CONNECTIONS": "1000000",
        "PUSHGATE_CLIENT_RATE": "1000000",
        "PUSHGATE_CLIENT_BURST": "1000000",
        # The connect storm and the job phases come from 127.0.0.1 only: no shared budgets.
        "PUSHGATE_RATE_SUBMIT": "0",
        "PUSHGATE_RATE_PUBLISH": "0",
        "PUSHGATE_RATE_CONNECT": "0",
        # `pushgate gateway` stops at once on SIGTERM, as uvicorn does.
        "PUSHGATE_DRAIN_SECONDS": "0",
    }


def uvicorn_argv(app: str, port: int, *, deflate: bool) -> list[str]:
    return [
        str(VENV_BIN / "uvicorn"), app, "--host", "127.0.0.1", "--port", str(port),
        "--ws-per-message-deflate", "true" if deflate else "false",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


def redis_pid(redis: RedisServer) -> int:
    assert redis.process is not None
    return redis.process.pid


def pushgate_argv(port: int, *, deflate: bool) -> list[str]:
    return [
        str(VENV_BIN / "pushgate"), "gateway", "--host", "127.0.0.1", "--port", str(port),
        "--ws-per-message-deflate", "true" if deflate else "false", "--log-level", "warning",
    ]  # fmt: skip


@dataclass
class Running:
    """A started system: its server process (the one measured), its Redis servers (pushgate's
    broker shards, in shard order; the first also holds the queue; a peer has one), and how to
    reach it."""

    system: str
    server: Child
    brokers: list[RedisServer]
    http_url: str
    ws_url: str

    @property
    def redis(self) -> RedisServer:
        return self.brokers[0]

    @property
    def server_pid(self) -> int:
        return self.server.pid

    @property
    def redis_pid(self) -> int:
        return redis_pid(self.redis)


async def start(
    system: str, children: Children, brokers: Sequence[RedisServer], *, deflate: bool
) -> Running:
    """One server process of ``system`` on ``brokers`` (more than one: pushgate only)."""
    redis = brokers[0]
    if len(brokers) > 1 and system not in OURS:
        raise ValueError(f"{system} runs on one Redis")
    port = free_port()
    http_url = f"http://127.0.0.1:{port}"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHGATE_")}
    if system in OURS:
        argv = (
            pushgate_argv(port, deflate=deflate)
            if system == PUSHGATE
            else uvicorn_argv("gateway.app:app", port, deflate=deflate)
        )
        shards = [b.url for b in brokers] if len(brokers) > 1 else []
        env = {**base_env, **pushgate_env(redis.url, shards)}
        ready, ws_url = f"{http_url}/readyz", f"ws://127.0.0.1:{port}/ws"
    elif system == BROADCASTER:
        argv = uvicorn_argv("bench.peers.broadcaster_app:app", port, deflate=deflate)
        env = {**base_env, "BENCH_REDIS_URL": redis.url}
        ready, ws_url = f"{http_url}/healthz", f"ws://127.0.0.1:{port}/ws"
    elif system == SOCKETIO:
        argv = ["node", str(JS_DIR / "socketio_server.js"), "--port", str(port)]
        argv += ["--redis-url", redis.url, *(["--deflate"] if deflate else [])]
        env = base_env
        ready = f"{http_url}/healthz"
        ws_url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
    else:
        raise ValueError(f"unknown system {system}")
    server = await children.start(system, argv, env=env, cwd=REPO)
    await wait_http_ok(ready, server)
    return Running(system, server, list(brokers), http_url, ws_url)


@asynccontextmanager
async def deployment(
    system: str, children: Children, *, servers: int = 1, shards: int = 1, deflate: bool = False
) -> AsyncIterator[list[Running]]:
    """``servers`` processes of ``system`` on ``shards`` fresh redis-servers (pushgate's broker
    shards); all stopped on the way out."""
    brokers = [children.start_redis() for _ in range(shards)]
    started: list[Running] = []
    try:
        starting = [start(system, children, brokers, deflate=deflate) for _ in range(servers)]
        outcomes = await asyncio.gather(*starting, return_exceptions=True)
        started += [done for done in outcomes if isinstance(done, Running)]
        for done in outcomes:
            if isinstance(done, BaseException):
                raise done
        yield started
    finally:
        for server in started:
            code = await children.stop(server.server)
            if code not in (0, -15):
                print(f"  {system} exited with {code}; log: {server.server.log}")
            _report_log(server.server)
        for redis in brokers:
            children.stop_redis(redis)


@asynccontextmanager
async def running(
    system: str, children: Children, *, deflate: bool = False
) -> AsyncIterator[Running]:
    """``system`` on a fresh redis-server; both stopped on the way out."""
    async with deployment(system, children, deflate=deflate) as [server]:
        yield server


def _report_log(server: Child) -> None:
    """Servers run at log level warning: anything they logged is worth a look."""
    try:
        lines = server.log.read_text(errors="replace").splitlines()
    except OSError:
        return
    lines = [line for line in lines if line.strip() and not line.startswith("listening on")]
    if lines:
        print(f"  {server.name} logged {len(lines)} lines ({server.log}), first: {lines[0][:160]}")
