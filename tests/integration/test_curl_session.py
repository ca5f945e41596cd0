"""The original prototype's session, as README shows it: ``curl`` opens ``/ws/jobs/1`` with a
WebSocket handshake first, then ``curl -X PUT /urls/1`` submits the job, against ``pushgate
dev``. The commands are read from README and run as written (on a free port)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis

from pushgate.broker.keys import redis_channel
from pushgate.cli.processes import free_port, spawn, stop
from pushgate.cli.redis_server import RedisServer
from tests.stack import wait_until_up

ROOT = Path(__file__).resolve().parents[2]
PUSHGATE = Path(sys.executable).parent / "pushgate"
START_TIMEOUT = 60.0
# README's --max-time, and a margin for curl to exit after it.
CURL_TIMEOUT = 70.0


def readme_session() -> list[list[str]]:
    """The shell commands of README's curl session, continuation lines joined."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.S)
    (block,) = [b for b in blocks if "/ws/jobs/1" in b and "PUT" in b]
    joined = block.replace("\\\n", " ")
    return [shlex.split(line) for line in joined.splitlines() if line.startswith("curl ")]


def on_port(argv: list[str], port: int) -> list[str]:
    return [arg.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for arg in argv]


@dataclass(frozen=True)
class Dev:
    port: int
    redis: RedisServer


@pytest.fixture(scope="module")
def dev() -> Iterator[Dev]:
    """``pushgate dev`` as a reader starts it, on a Redis of its own that the test can watch;
    fetches fail fast here (there may be no internet)."""
    port, redis = free_port(), RedisServer().start()
    env = {**os.environ, "PUSHGATE_REDIS_URL": redis.url}
    env.update(PUSHGATE_FETCH_TIMEOUT="2", PUSHGATE_FETCH_RETRIES="0")
    process = spawn([str(PUSHGATE), "dev", "--port", str(port)], env=env, quiet=True)
    try:
        wait_until_up(process, f"http://127.0.0.1:{port}/readyz", START_TIMEOUT)
        yield Dev(port, redis)
    finally:
        stop(process, timeout=30)
        redis.stop()


def wait_for_a_subscriber(redis: RedisServer, channel: str, timeout: float) -> None:
    """Until a gateway subscribed ``channel`` in Redis: a socket waiting for its job is."""
    client = Redis.from_url(redis.url)
    try:
        deadline = time.monotonic() + timeout
        while not client.pubsub_numsub(redis_channel(channel))[0][1]:  # type: ignore[index]
            assert time.monotonic() < deadline, f"nobody subscribed {channel}"
            time.sleep(0.05)
    finally:
        client.close()


def frames(data: bytes) -> list[tuple[int, bytes]]:
    """The (opcode, payload) of each unmasked server frame in ``data``."""
    found = []
    while data:
        opcode, length, start = data[0] & 0x0F, data[1] & 0x7F, 2
        if length == 126:
            length, start = int.from_bytes(data[2:4], "big"), 4
        found.append((opcode, data[start : start + length]))
        data = data[start + length :]
    return found


def test_the_readme_curl_session_runs_as_written(dev: Dev) -> None:
    watch, submit = (on_port(argv, dev.port) for argv in readme_session())
    assert watch[:4] == ["curl", "--http1.1", "--include", "--no-buffer"]
    socket = subprocess.Popen(watch, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        wait_for_a_subscriber(dev.redis, "job:1", timeout=20)  # the socket waits: no job yet
        submitted = subprocess.run(submit, capture_output=True, timeout=30, check=True)
        assert json.loads(submitted.stdout) == {"status": "accepted", "request_id": "1"}
        started = time.monotonic()
        output, _ = socket.communicate(timeout=CURL_TIMEOUT)
        print(f"curl exited {time.monotonic() - started:.1f} s after the submit")
    finally:
        if socket.poll() is None:
            socket.kill()
            socket.wait()
    assert socket.returncode == 0
    headers, _, body = output.partition(b"\r\n\r\n")
    assert headers.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Accept: dys2F3nDt2AiB9TSDfr8eCNN0YM=" in headers  # README's output
    *texts, (close_opcode, close) = frames(body)
    events = [json.loads(payload) for opcode, payload in texts if opcode == 1]
    assert len(events) == len(texts)
    assert {event["channel"] for event in events} == {"job:1"}
    types = [event["data"]["type"] for event in events]
    print(f"events: {types}")
    assert types[:2] == ["queued", "started"]
    assert types[2] in ("result", "failed") and len(types) == 3  # failed: no internet here
    assert (close_opcode, close) == (8, (1000).to_bytes(2, "big") + b"job finished")


def test_the_prototypes_own_13_byte_key_is_refused(dev: Dev) -> None:
    watch = on_port(readme_session()[0], dev.port)
    key = watch.index("Sec-WebSocket-Key: SGVsbG8sIHdvcmxkISEhIQ==")
    watch[key] = "Sec-WebSocket-Key: SGVsbG8sIHdvcmxkIQ=="
    refused = subprocess.run([*watch[:-1], "--max-time", "10", watch[-1]], capture_output=True)
    assert refused.stdout.startswith(b"HTTP/1.1 400 ")
