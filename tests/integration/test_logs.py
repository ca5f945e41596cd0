"""A full run with JSON logs: every line is one JSON object, uvicorn's and arq's included; no
token, key or secret of the run appears anywhere in what gateway and worker wrote; our own lines
carry the request id, client id and channel namespace of what they are about, and never a
channel's name."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
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
        "PUSHGATE_LOG_LEVEL": "debug",  # every line, the routine ones too, must hold no secret
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


@dataclass
class Run:
    """What a run did (ids, names, credentials used) and what gateway and worker wrote."""

    request_id: str = ""
    failed_id: str = ""  # a job whose page is missing
    rpc_client: str = ""
    channel: str = f"chat:room-{uuid.uuid4().hex}"
    credentials: list[str] = field(default_factory=list)
    gateway: list[dict[str, Any]] = field(default_factory=list)
    worker: list[dict[str, Any]] = field(default_factory=list)
    text: str = ""

    def ours(self, message: str) -> list[dict[str, Any]]:
        """Lines of pushgate's own loggers whose message starts with ``message``."""
        return [
            line
            for line in (*self.gateway, *self.worker)
            if line["logger"].startswith(OUR_LOGGERS) and line["message"].startswith(message)
        ]


OUR_LOGGERS = ("gateway", "worker", "pushgate")


async def _exercise(base: str, origin: Origin, run: Run) -> None:
    """Use every path that carries a credential, and a socket of each kind."""
    bearer = jwt.encode({"sub": "ann"}, SECRET, algorithm="HS256")
    wrong = jwt.encode({"sub": "eve"}, "not-the-secret-" + "q" * 32, algorithm="HS256")
    headers = {"Authorization": f"Bearer {bearer}"}
    body = {"url": origin.url("/pages/links.html"), "request_id": f"log-{uuid.uuid4().hex}"}
    job = httpx.post(f"{base}/jobs", json=body, headers=headers, timeout=10).json()
    run.request_id = job["request_id"]
    subscribe_token = job["subscribe_token"]
    ws = base.replace("http", "ws")
    transcript = await read_all(f"{ws}/ws/jobs/{job['request_id']}?token={subscribe_token}")
    assert transcript.close_code == 1000
    got = httpx.get(f"{base}/jobs/{job['request_id']}?token={subscribe_token}", timeout=10)
    assert got.status_code == 200
    async with (
        rpc(ws) as client,
        httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as http,
        http.stream("GET", "/sse", params={"channel": run.channel}) as stream,
    ):
        run.rpc_client = (await client.result("connect", {"token": bearer}))["client"]
        await client.result("subscribe", {"channel": run.channel})
        lines = stream.aiter_lines()
        assert await anext(lines) == "retry: 2000"  # subscribed
        published = await http.post(
            f"/channels/{run.channel}/publications",
            json={"data": 1},
            headers={"X-API-Key": API_KEY},
        )
        assert published.status_code == 200
        await client.publications_until(1)
    missing = {"url": origin.url("/missing"), "request_id": f"log-{uuid.uuid4().hex}"}
    failed = httpx.post(f"{base}/jobs", json=missing, headers=headers, timeout=10).json()
    run.failed_id = failed["request_id"]
    transcript = await read_all(f"{ws}/ws/jobs/{run.failed_id}?token={failed['subscribe_token']}")
    assert transcript.types[-1] == "failed"
    async with rpc(ws) as client:
        assert await client.error_code("connect", {"token": wrong}) == -32001
        assert (await client.closed())[0] == 4401
    async with websockets.connect(f"{ws}/ws/jobs/{job['request_id']}?token={wrong}") as socket:
        await socket.wait_closed()
    run.credentials = [SECRET, API_KEY, bearer, wrong, subscribe_token, failed["subscribe_token"]]


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


def _wait_for(path: Path, *needles: str) -> None:
    """Until the log holds every needle: the gateway sees a client leave a moment after it left."""
    deadline = time.monotonic() + 10
    while not all(needle in path.read_text() for needle in needles):
        assert time.monotonic() < deadline, f"{path.name} never got {needles}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def run(redis_server: RedisServer, origin: Origin, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One gateway and one worker with JSON logs, through ``_exercise``; their lines."""
    env = _env(redis_db(redis_server, 5))
    port = free_port()
    logs = tmp_path_factory.mktemp("logs")
    gateway_log, worker_log = logs / "gateway.log", logs / "worker.log"
    argv = [str(BIN / "uvicorn"), "gateway.app:app", "--host", "127.0.0.1", "--port", str(port)]
    result = Run()
    with gateway_log.open("wb") as g_out, worker_log.open("wb") as w_out:
        gateway = spawn([*argv, "--ws-per-message-deflate", "false"], env=env, log=g_out)
        worker = spawn([str(BIN / "arq"), "worker.WorkerSettings"], env=env, log=w_out)
        try:
            _wait_ready(f"http://127.0.0.1:{port}")
            asyncio.run(_exercise(f"http://127.0.0.1:{port}", origin, result))
            _wait_for(gateway_log, '"stream closed', result.rpc_client)
        finally:
            stop(worker)
            stop(gateway)
    result.gateway, result.worker = _lines(gateway_log), _lines(worker_log)
    result.text = gateway_log.read_text() + worker_log.read_text()
    return result


def test_json_logs_of_a_full_run_hold_no_secret(run: Run) -> None:
    for line in (*run.gateway, *run.worker):
        assert {"ts", "level", "logger", "message"} <= set(line)
    access = [line for line in run.gateway if line["logger"] == "uvicorn.access"]
    assert any("/ws/jobs/" in line["message"] or "/jobs/" in line["message"] for line in access)
    arq_lines = [line["message"] for line in run.worker if line["logger"].startswith("arq")]
    assert any("scrape" in message for message in arq_lines)
    assert len(arq_lines) == len(set(arq_lines)), "arq lines written twice"
    for credential in run.credentials:
        assert credential not in run.text


def test_job_lines_carry_the_request_id(run: Run) -> None:
    def about(message: str, request_id: str) -> dict[str, Any]:
        (line,) = [line for line in run.ours(message) if line.get("request_id") == request_id]
        return line

    for request_id in (run.request_id, run.failed_id):
        submitted = about("job submitted", request_id)
        assert submitted.items() >= {"channel": "job", "transport": "http"}.items()
        assert about("job started", request_id)["attempt"] == 1
    finished = about("job finished", run.request_id)
    assert finished["message"] == "job finished: result" and finished["attempt"] == 1
    assert "code" not in finished  # only a failure has one
    failed = about("job finished", run.failed_id)
    assert failed["message"] == "job finished: failed" and failed["code"] == "http_error"


def test_socket_lines_carry_client_transport_and_namespace(run: Run) -> None:
    closed = run.ours("socket closed") + run.ours("stream closed")
    by_transport: dict[str, list[dict[str, Any]]] = {}
    for line in closed:
        by_transport.setdefault(line["transport"], []).append(line)
    # Two /ws sockets, the second one's connect refused; the job socket with a wrong token was
    # refused before it opened (as in pushgate_connections_opened_total), so it has no line.
    assert sorted(by_transport) == ["sse", "ws_jobs", "ws_rpc"]
    (session,) = [line for line in by_transport["ws_rpc"] if line["client"] == run.rpc_client]
    (refused,) = [line for line in by_transport["ws_rpc"] if line is not session]
    jobs = {line["request_id"]: line for line in by_transport["ws_jobs"]}
    assert len(by_transport["ws_jobs"]) == 2 and set(jobs) == {run.request_id, run.failed_id}
    job_socket = jobs[run.request_id]
    (stream,) = by_transport["sse"]
    assert session["code"] == 1000 and refused["code"] == 4401
    assert job_socket.items() >= {"channel": "job", "request_id": run.request_id}.items()
    assert job_socket["code"] == 1000
    assert stream["channel"] == "chat"
    clients = [line["client"] for line in closed]
    assert all(clients) and len(set(clients)) == len(clients)  # one id per connection
    opened = run.ours("socket opened") + run.ours("stream opened")
    assert sorted(line["client"] for line in opened) == sorted(clients)
    # Routine ends are debug (one info line per connection would follow connection churn);
    # a close with a reason is info.
    assert [line["level"] for line in (session, job_socket, stream)] == ["debug"] * 3
    assert refused["level"] == "info"


def test_our_lines_never_name_a_channel(run: Run) -> None:
    ours = [line for line in (*run.gateway, *run.worker) if line["logger"].startswith(OUR_LOGGERS)]
    assert ours
    names = (run.channel, f"job:{run.request_id}", f"job:{run.failed_id}")
    for line in ours:
        assert not any(name in json.dumps(line) for name in names), line
