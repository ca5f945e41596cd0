"""Rate limits hold across replicas: two real gateways on one Redis spend one budget.

Every test counts from its own user, API key or loopback source address (127.0.0.x), so each
starts with a full bucket. One token comes back every 2 s, which is far longer than the few
requests before each refusal take, so the counts are exact.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
import redis
import websockets

from pushgate.cli.redis_server import RedisServer
from tests.conftest import redis_db
from tests.rpc import rpc
from tests.stack import Gateway, Stack

SECRET = "rate-limit-secret-" + "r" * 32
BURST = 4
KEYS = ("publisher-key-one", "publisher-key-two")
RATE_ENV = {
    "PUSHGATE_JWT_SECRET": SECRET,
    "PUSHGATE_API_KEYS": ",".join(KEYS),
    "PUSHGATE_NAMESPACES": '{"chat": {"publish": true}}',
    **{
        f"PUSHGATE_RATE_{budget}{suffix}": value
        for budget in ("SUBMIT", "PUBLISH", "CONNECT")
        for suffix, value in (("", "0.5"), ("_BURST", str(BURST)))
    },
}


@pytest.fixture(scope="module")
def rated(redis_server: RedisServer) -> Iterator[Stack]:
    with Stack(redis_db(redis_server, 3), gateways=2, workers=0, env=RATE_ENV) as running:
        yield running


def bearer(user: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + jwt.encode({"sub": user}, SECRET, algorithm="HS256")}


def client(gateway: Gateway, source: str = "127.0.0.1") -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(base_url=gateway.http_url, transport=transport, timeout=10)


def submit(gateway: Gateway, user: str) -> httpx.Response:
    with client(gateway) as http:
        return http.post("/jobs", json={"url": "http://127.0.0.1:9/"}, headers=bearer(user))


def retry_after(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "rate_limited"
    seconds = int(response.headers["retry-after"])
    assert 1 <= seconds <= 2  # one token at 0.5 a second
    return seconds


def test_submissions_share_one_budget_across_gateways(rated: Stack) -> None:
    first, second = rated.gateways
    user = f"alice-{uuid.uuid4().hex}"
    assert [submit(g, user).status_code for g in (first, second) * (BURST // 2)] == [202] * BURST
    wait = retry_after(submit(first, user))
    with client(second) as http:
        put = http.put(
            f"/urls/{uuid.uuid4().hex}", json={"url": "http://127.0.0.1:9/"}, headers=bearer(user)
        )
    retry_after(put)
    assert submit(second, f"bob-{uuid.uuid4().hex}").status_code == 202  # a budget per user
    time.sleep(wait)
    assert submit(second, user).status_code == 202


async def test_rpc_submit_spends_the_users_http_budget(rated: Stack) -> None:
    first, second = rated.gateways
    user = f"carol-{uuid.uuid4().hex}"
    for _ in range(BURST - 1):
        assert submit(first, user).status_code == 202
    async with rpc(second.ws_url, source="127.0.0.21") as socket:
        token = jwt.encode({"sub": user}, SECRET, algorithm="HS256")
        await socket.result("connect", {"token": token})
        params = {"url": "http://127.0.0.1:9/"}
        assert (await socket.result("submit", params))["status"] == "queued"
        refused = await socket.call("submit", params)
        assert refused["error"]["code"] == -32029
        assert 1 <= refused["error"]["data"]["retry_after"] <= 2
        assert await socket.result("ping") == {}  # the socket stays open
    retry_after(submit(first, user))


async def test_new_connections_per_address_share_one_budget(rated: Stack) -> None:
    first, second = rated.gateways
    source = "127.0.0.31"
    for gateway in (first, second) * (BURST // 2):
        async with rpc(gateway.ws_url, source=source) as socket:
            assert await socket.error_code("ping") == -32001  # accepted; not connected yet
    async with rpc(first.ws_url, source=source) as refused:
        code, reason = await refused.closed()
    assert code == 4429
    assert "retry in" in reason
    wait = int(reason.rsplit("retry in ", 1)[1].split()[0])
    job_code, _ = await job_socket_close(second, source)
    assert job_code == 4429
    with client(first, source) as http:
        retry_after(http.get("/sse", params={"channel": "chat:x"}))
    async with rpc(first.ws_url, source="127.0.0.32") as other:  # another address
        assert await other.error_code("ping") == -32001
    await asyncio.sleep(wait)
    async with rpc(second.ws_url, source=source) as again:
        assert await again.error_code("ping") == -32001


async def job_socket_close(gateway: Gateway, source: str) -> tuple[int | None, str]:
    url = f"{gateway.ws_url}/ws/jobs/{uuid.uuid4().hex}"
    async with websockets.connect(url, local_addr=(source, 0)) as socket:
        async with asyncio.timeout(10):
            with pytest.raises(websockets.ConnectionClosed):
                await socket.recv()
        return socket.close_code, socket.close_reason or ""


def test_addresses_forwarded_by_a_trusted_proxy_are_counted(rated: Stack) -> None:
    """uvicorn trusts X-Forwarded-For from 127.0.0.1 (its default) and from nobody else."""
    first, second = rated.gateways

    def opens(gateway: Gateway, source: str, forwarded: str) -> int:
        with client(gateway, source) as http:  # an invalid channel: counted, then refused
            response = http.get(
                "/sse", params={"channel": "nope"}, headers={"X-Forwarded-For": forwarded}
            )
        return response.status_code

    proxied = [opens(g, "127.0.0.1", "198.51.100.7") for g in (first, second) * (BURST // 2)]
    assert proxied == [422] * BURST
    assert opens(first, "127.0.0.1", "198.51.100.7") == 429
    assert opens(second, "127.0.0.1", "198.51.100.8") == 422  # another client behind the proxy
    direct = [opens(g, "127.0.0.51", "198.51.100.9") for g in (first, second) * (BURST // 2)]
    assert direct == [422] * BURST
    assert opens(first, "127.0.0.51", "198.51.100.10") == 429  # its header chooses nothing


def publish(gateway: Gateway, key: str) -> httpx.Response:
    with client(gateway) as http:
        return http.post(
            "/channels/chat:rates/publications", json={"data": {}}, headers={"X-API-Key": key}
        )


def test_publish_calls_share_one_budget_per_key(rated: Stack) -> None:
    first, second = rated.gateways
    key, other = KEYS
    statuses = [publish(g, key).status_code for g in (first, second) * (BURST // 2)]
    assert statuses == [200] * BURST
    wait = retry_after(publish(second, key))
    assert publish(first, other).status_code == 200
    with redis.Redis.from_url(rated.redis_url) as store:
        names: list[Any] = list(store.scan_iter(match="pushgate:{rate:*", count=1000))
    assert any(b":key:" in name for name in names)
    assert not [name for name in names if any(k.encode() in name for k in KEYS)]
    time.sleep(wait)
    assert publish(first, key).status_code == 200


@pytest.fixture(scope="module")
def fragile() -> Iterator[tuple[Stack, RedisServer]]:
    """A gateway on a Redis of its own, to stop: one new connection per address, ever."""
    server = RedisServer().start()
    env = {
        "PUSHGATE_AUTH_DISABLED": "true",
        "PUSHGATE_RATE_CONNECT": "0.001",
        "PUSHGATE_RATE_CONNECT_BURST": "1",
    }
    try:
        with Stack(server.url, gateways=1, workers=0, env=env) as running:
            yield running, server
    finally:
        server.stop()


async def opens(gateway: Gateway, source: str) -> bool:
    async with rpc(gateway.ws_url, source=source) as socket:
        try:
            return await socket.result("ping") == {}
        except websockets.ConnectionClosed:
            assert socket.socket.close_code == 4429
            return False


async def test_limits_fail_open_while_redis_is_down(fragile: tuple[Stack, RedisServer]) -> None:
    stack, server = fragile
    (gateway,) = stack.gateways
    source = "127.0.0.41"
    assert [await opens(gateway, source) for _ in range(2)] == [True, False]
    server.stop()
    assert [await opens(gateway, source) for _ in range(3)] == [True, True, True]
    restarted = RedisServer(port=server.port).start()  # empty: the bucket starts full
    try:
        assert [await opens(gateway, source) for _ in range(2)] == [True, False]
    finally:
        restarted.stop()
