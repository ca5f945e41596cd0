"""GET /status with an API key, and `pushgate status` over several gateways."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import httpx

from tests.conftest import API_KEY, token
from tests.rpc import rpc
from tests.stack import BIN, Stack


def status(base: str, key: str | None = API_KEY) -> httpx.Response:
    return httpx.get(f"{base}/status", headers={"X-API-Key": key} if key else {}, timeout=10)


def ready_status(base: str) -> dict[str, Any]:
    """The status once the gateway's pub/sub is up (other tests kill pub/sub clients of this
    Redis, and the gateway takes a moment to reconnect)."""
    deadline = time.monotonic() + 10
    while not (answer := status(base).json())["redis"]["pubsub"]:
        assert time.monotonic() < deadline, answer
        time.sleep(0.05)
    assert isinstance(answer, dict)
    return answer


def test_status_needs_an_api_key_where_auth_is_on(auth_stack: Stack) -> None:
    base = auth_stack.gateways[0].http_url
    for key in (None, "wrong"):
        refused = status(base, key)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
    assert status(base).status_code == 200


async def test_status_counts_this_gateways_sockets_and_channels(auth_stack: Stack) -> None:
    gateway = auth_stack.gateways[0]
    before = ready_status(gateway.http_url)
    assert before["version"] == "0.1.0"
    assert before["draining"] is False
    assert before["redis"]["ok"] is True and before["redis"]["pubsub"] is True
    assert isinstance(before["redis"]["queue_depth"], int)
    assert ":" in before["redis"]["address"] and "@" not in before["redis"]["address"]
    # Without PUSHGATE_BROKER_URLS the broker plane is the one Redis: one shard, up.
    [shard] = before["shards"]
    assert shard["index"] == 0 and shard["up"] is True
    assert shard["address"] == auth_stack.redis_url
    async with rpc(gateway.ws_url) as one, rpc(gateway.ws_url) as two:
        for client in (one, two):
            await client.result("connect", {"token": token("status-user")})
            await client.result("subscribe", {"channel": "chat:status-room"})
        during = status(gateway.http_url).json()
    assert during["connections"]["open"] == before["connections"]["open"] + 2
    assert during["connections"]["ws"] == before["connections"]["ws"] + 2
    assert during["channels"] == before["channels"] + 1
    assert during["subscriptions"] == before["subscriptions"] + 2


def test_pushgate_status_prints_a_row_per_gateway(stack: Stack) -> None:
    urls = [gateway.http_url for gateway in stack.gateways]
    done = subprocess.run(
        [str(BIN / "pushgate"), "status", *urls, "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 1  # the last one does not answer
    assert lines[0].split()[:3] == ["gateway", "version", "up"]
    for url, line in zip(urls, lines[1:3], strict=True):
        assert line.startswith(url) and " 0.1.0 " in line and " ok " in line
        assert line.endswith(" 1/1 up")
    assert lines[3].startswith("http://127.0.0.1:9") and "unreachable" in lines[3]
