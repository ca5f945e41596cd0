"""``pushgate dev`` on a machine where only Python is set up: embedded Redis, gateway, worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from pushgate.cli.processes import free_port, is_alive
from pushgate.cli.redis_sentinel import SentinelGroup
from tests.origin import Origin
from tests.wsclient import read_all

START_TIMEOUT = 60.0


def children_of(pid: int) -> set[int]:
    """Every live descendant of ``pid``, read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def wait_for_banner(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Try it:"):
            return "".join(lines)
    raise AssertionError("pushgate dev did not start:\n" + "".join(lines))


PUSHGATE = Path(sys.executable).parent / "pushgate"


def start_dev(port: int, redis_url: str | None) -> subprocess.Popen[str]:
    """``pushgate dev`` on ``port``, its banner readable; ``redis_url`` None: embedded Redis."""
    env = {k: v for k, v in os.environ.items() if k != "PUSHGATE_REDIS_URL"}
    if redis_url is not None:
        env["PUSHGATE_REDIS_URL"] = redis_url
    env["PUSHGATE_ALLOW_PRIVATE_ADDRESSES"] = "true"
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.Popen(
        [str(PUSHGATE), "dev", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


async def test_dev_runs_everything_and_ctrl_c_leaves_nothing(origin: Origin) -> None:
    port = free_port()
    process = start_dev(port, None)
    try:
        banner = wait_for_banner(process)
        assert "(embedded" in banner
        assert f"http://127.0.0.1:{port}" in banner
        descendants = children_of(process.pid)
        assert len(descendants) >= 3  # redis-server, gateway, worker

        base = f"http://127.0.0.1:{port}"
        response = httpx.post(f"{base}/jobs", json={"url": origin.url("/pages/links.html")})
        assert response.status_code == 202
        transcript = await read_all(f"ws://127.0.0.1:{port}{response.json()['ws_url']}")
        assert transcript.types == ["queued", "started", "result"]

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while any(is_alive(pid) for pid in descendants) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in descendants if is_alive(pid)]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()


async def test_dev_behind_sentinel_runs_jobs_on_the_master_it_names(origin: Origin) -> None:
    """``pushgate dev`` with a redis+sentinel:// URL: no embedded Redis; the gateway and the
    worker use the master the sentinels name, and ``pushgate status`` shows it."""
    group = SentinelGroup().start()
    port = free_port()
    process = start_dev(port, group.url)
    try:
        banner = wait_for_banner(process)
        assert "(embedded" not in banner and group.url in banner
        base = f"http://127.0.0.1:{port}"
        response = httpx.post(f"{base}/jobs", json={"url": origin.url("/pages/links.html")})
        assert response.status_code == 202
        transcript = await read_all(f"ws://127.0.0.1:{port}{response.json()['ws_url']}")
        assert transcript.types == ["queued", "started", "result"]
        status = subprocess.run(
            [str(PUSHGATE), "status", base], capture_output=True, text=True, timeout=30
        )
        assert f"127.0.0.1:{group.master.port} (sentinel pushgate) ok" in status.stdout
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        assert process.stdout is not None
        process.stdout.close()
        group.stop()
