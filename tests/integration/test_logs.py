"""A full run with JSON logs: every line is one JSON object, uvicorn's and arq's included, and
no token, key or secret of the run appears anywhere in what gateway and worker wrote."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import websockets

from pushgate.cli.processes import free_port, spawn, stop
from pushgate.cli.redis_server import RedisServer
from tests.conftest import redis_db
from tests.origin import Origin
from tests.rpc import rpc
from tests.stack import BIN
from tests.wsclient import read_all

SECRET = "log-test-secret-" + "z" * 32
API_KEY = "log-test-api-key-0123456789"


def _env(redis_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "PUSHGATE_REDIS_URL": redis_url,
        "PUSHGATE_JWT_SECRET": SECRET,
        "PUSHGATE_API_KEYS": API_KEY,
        "PUSHGATE_LOG_FORMAT": "json",
        "PUSHGATE_ALLOW_PRIVATE_ADDRESSES": "true",
        "PUSHGATE_NAMESPACES": json.dumps({"chat": {"publish": True}}),
    }


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "gateway not ready"
        time.sleep(0.05)


async def _exercise(base: str, origin: Origin) -> list[str]:
    """Use every path that carries a credential; returns the credentials it used."""
    bearer = jwt.encode({"sub": "ann"}, SECRET, algorithm="HS256")
    wrong = jwt.encode({"sub": "eve"}, "not-the-secret-" + "q" * 32, algorithm="HS256")
    headers = {"Authorization": f"Bearer {bearer}"}
    body = {"url": origin.url("/pages/links.html"), "request_id": f"log-{uuid.uuid4().hex}"}
    job = httpx.post(f"{base}/jobs", json=body, headers=headers, timeout=10).json()
    subscribe_token = job["subscribe_token"]
    ws = base.replace("http", "ws")
    transcript = await read_all(f"{ws}/ws/jobs/{job['request_id']}?token={subscribe_token}")
    assert transcript.close_code == 1000
    got = httpx.get(f"{base}/jobs/{job['request_id']}?token={subscribe_token}", timeout=10)
    assert got.status_code == 200
    published = httpx.post(
        f"{base}/channels/chat:room/publications",
        json={"data": 1},
        headers={"X-API-Key": API_KEY},
        timeout=10,
    )
    assert published.status_code == 200
    async with rpc(ws) as client:
        assert await client.error_code("connect", {"token": wrong}) == -32001
    async with websockets.connect(f"{ws}/ws/jobs/{job['request_id']}?token={wrong}") as socket:
        await socket.wait_closed()
    return [SECRET, API_KEY, bearer, wrong, subscribe_token]


def _lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    assert text, f"{path.name} is empty"
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"{path.name}: not a JSON line: {line!r}") from None
    return lines


async def test_json_logs_of_a_full_run_hold_no_secret(
    redis_server: RedisServer, origin: Origin, tmp_path: Path
) -> None:
    env = _env(redis_db(redis_server, 5))
    port = free_port()
    gateway_log, worker_log = tmp_path / "gateway.log", tmp_path / "worker.log"
    argv = [str(BIN / "uvicorn"), "gateway.app:app", "--host", "127.0.0.1", "--port", str(port)]
    with gateway_log.open("wb") as g_out, worker_log.open("wb") as w_out:
        gateway = spawn([*argv, "--ws-per-message-deflate", "false"], env=env, log=g_out)
        worker = spawn([str(BIN / "arq"), "worker.WorkerSettings"], env=env, log=w_out)
        try:
            _wait_ready(f"http://127.0.0.1:{port}")
            credentials = await _exercise(f"http://127.0.0.1:{port}", origin)
        finally:
            stop(worker)
            stop(gateway)
    gateway_lines, worker_lines = _lines(gateway_log), _lines(worker_log)
    for line in (*gateway_lines, *worker_lines):
        assert {"ts", "level", "logger", "message"} <= set(line)
    access = [line for line in gateway_lines if line["logger"] == "uvicorn.access"]
    assert any("/ws/jobs/" in line["message"] or "/jobs/" in line["message"] for line in access)
    arq_lines = [line["message"] for line in worker_lines if line["logger"].startswith("arq")]
    assert any("scrape" in message for message in arq_lines)
    assert len(arq_lines) == len(set(arq_lines)), "arq lines written twice"
    everything = gateway_log.read_text() + worker_log.read_text()
    for credential in credentials:
        assert credential not in everything
