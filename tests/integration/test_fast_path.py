"""The gateway says when its direct-write fast path is off, and stays quiet when it is on."""

from __future__ import annotations

import json
import os
import subprocess
import time

import httpx
import pytest
import websockets

from pushgate.cli.processes import free_port, stop
from pushgate.cli.redis_server import RedisServer
from tests.conftest import OPEN_ENV
from tests.stack import BIN

WARNING = "direct-write fast path is off"
UVICORN = (str(BIN / "uvicorn"), "gateway.app:app", "--no-access-log")
PUSHGATE_GATEWAY = (str(BIN / "pushgate"), "gateway")


async def gateway_log(
    redis_server: RedisServer, *uvicorn_args: str, command: tuple[str, ...] = UVICORN
) -> str:
    """Run a gateway (``command``) with ``uvicorn_args``, make one /ws call, stop it; returns
    what it logged."""
    port = free_port()
    env = {**os.environ, **OPEN_ENV, "PUSHGATE_REDIS_URL": redis_server.url}
    argv = [*command, "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        [*argv, *uvicorn_args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not _ready(port):
            assert process.poll() is None and time.monotonic() < deadline, "gateway did not start"
            time.sleep(0.05)
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as socket:
            await socket.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "connect"}))
            assert "result" in json.loads(await socket.recv())
    finally:
        stop(process)
        _out, err = process.communicate()  # closes the pipe
    return err.decode()


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


async def test_no_warning_on_the_documented_command(redis_server: RedisServer) -> None:
    log = await gateway_log(redis_server, "--ws-per-message-deflate", "false")
    assert "Application startup complete" in log
    assert WARNING not in log


@pytest.mark.parametrize("ws", ["lean", "websockets-sansio"])
async def test_no_warning_from_pushgate_gateway(redis_server: RedisServer, ws: str) -> None:
    log = await gateway_log(redis_server, "--ws", ws, command=PUSHGATE_GATEWAY)
    assert "Application startup complete" in log
    assert WARNING not in log


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("--ws", "websockets"), "not websockets-sansio"),
        (("--ws-per-message-deflate", "true"), "permessage-deflate was negotiated"),
    ],
)
async def test_warns_once_when_the_fast_path_is_off(
    redis_server: RedisServer, args: tuple[str, ...], reason: str
) -> None:
    log = await gateway_log(redis_server, *args)
    assert log.count(WARNING) == 1
    assert reason in log
