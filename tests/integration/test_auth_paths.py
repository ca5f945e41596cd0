"""With auth on, nobody receives a channel they may not read: WS, SSE, history, GET /jobs."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import ALLOWED_ORIGIN, API_KEY, JWT_SECRET, token
from tests.origin import Origin
from tests.rpc import RawRpc, rpc
from tests.stack import BIN, Gateway, Stack
from tests.wsclient import read_all


def bearer(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user)}"}


@pytest.fixture(scope="module")
def gateway(auth_stack: Stack) -> Gateway:
    return auth_stack.gateways[0]


@pytest.fixture(scope="module")
def http(gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.http_url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def alices_job(http: httpx.Client, origin: Origin) -> dict[str, Any]:
    """A finished job of alice's, and the subscribe token she got for it."""
    response = http.post(
        "/jobs", json={"url": origin.url("/pages/links.html")}, headers=bearer("alice")
    )
    assert response.status_code == 202
    job: dict[str, Any] = response.json()
    deadline = time.monotonic() + 30
    while (
        http.get(f"/jobs/{job['request_id']}", headers=bearer("alice")).json()["status"] != "done"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return job


async def connected(client: RawRpc, user: str, **claims: Any) -> None:
    result = await client.result("connect", {"token": token(user, **claims)})
    assert result["user"] == user


def test_http_submission_needs_a_valid_bearer_token(http: httpx.Client) -> None:
    body = {"url": "http://127.0.0.1:9/"}
    for headers in (
        {},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": f"Bearer {token('a')}x"},
    ):
        response = http.post("/jobs", json=body, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
    assert http.put(f"/urls/{uuid.uuid4().hex}", json=body).status_code == 401


def test_a_taken_request_id_is_a_conflict_for_another_user(
    http: httpx.Client, alices_job: dict[str, Any]
) -> None:
    body = {"url": alices_job["url"], "request_id": alices_job["request_id"]}
    stolen = http.post("/jobs", json=body, headers=bearer("bob"))
    assert stolen.status_code == 409
    assert "subscribe_token" not in stolen.text
    again = http.post("/jobs", json=body, headers=bearer("alice"))
    assert again.status_code == 200
    assert again.json()["subscribe_token"]


def test_get_job_by_owner_or_token_only(http: httpx.Client, alices_job: dict[str, Any]) -> None:
    path = f"/jobs/{alices_job['request_id']}"
    assert http.get(path, headers=bearer("alice")).json()["status"] == "done"
    assert http.get(path, params={"token": alices_job["subscribe_token"]}).status_code == 200
    # Not readable is answered as not there (tests/integration/test_hostile.py checks the bytes).
    assert http.get(path).status_code == 404
    assert http.get(path, headers=bearer("bob")).status_code == 404
    assert http.get(path, params={"token": "forged"}).status_code == 401
    other = http.post("/jobs", json={"url": "http://127.0.0.1:9/o"}, headers=bearer("bob")).json()
    assert http.get(path, params={"token": other["subscribe_token"]}).status_code == 404


async def test_job_socket_needs_the_jobs_token(
    gateway: Gateway, alices_job: dict[str, Any]
) -> None:
    base = f"{gateway.ws_url}/ws/jobs/{alices_job['request_id']}"
    # Without a token: 4401 at once, for every job id alike (it never waits, learns nothing).
    assert (await read_all(base)).close_code == 4401
    assert (await read_all(f"{base}?token=forged")).close_code == 4401
    transcript = await read_all(f"{base}?token={alices_job['subscribe_token']}")
    assert transcript.types == ["queued", "started", "result"]


async def test_rpc_calls_before_connect_are_unauthorized_and_bad_tokens_close(
    gateway: Gateway,
) -> None:
    async with rpc(gateway.ws_url) as client:
        assert await client.error_code("subscribe", {"channel": "chat:a"}) == -32001
        assert await client.error_code("connect", {"token": "forged"}) == -32001
        code, _ = await client.closed()
        assert code == 4401


async def test_silent_socket_is_closed_after_the_connect_timeout(gateway: Gateway) -> None:
    async with rpc(gateway.ws_url) as client:
        code, reason = await client.closed()
        assert code == 4401
        assert "connect timeout" in reason


async def test_expired_token_closes_the_socket(gateway: Gateway) -> None:
    async with rpc(gateway.ws_url) as client:
        await connected(client, "carol", exp=int(time.time()) + 1)
        code, reason = await client.closed()
        assert code == 4401
        assert "expired" in reason


async def test_job_channel_over_rpc_by_owner_or_token(
    gateway: Gateway, alices_job: dict[str, Any]
) -> None:
    channel = alices_job["channel"]
    since = {"epoch": "", "offset": ""}  # from the start
    async with rpc(gateway.ws_url) as alice, rpc(gateway.ws_url) as bob:
        await connected(alice, "alice")
        await connected(bob, "bob")
        result = await alice.result("subscribe", {"channel": channel, "since": since})
        assert result["recovered"] is True
        assert len(await alice.publications_until(3)) == 3
        assert await bob.error_code("subscribe", {"channel": channel}) == -32004
        assert await bob.error_code("history", {"channel": channel}) == -32004
        with_token = {"channel": channel, "since": since, "token": alices_job["subscribe_token"]}
        await bob.result("subscribe", with_token)
        assert len(await bob.publications_until(3)) == 3


async def test_private_namespace_needs_the_channels_claim(gateway: Gateway) -> None:
    async with rpc(gateway.ws_url) as member, rpc(gateway.ws_url) as outsider:
        await connected(member, "m", channels=["team:*"])
        await connected(outsider, "o", channels=["team:other"])
        await member.result("subscribe", {"channel": "team:red"})
        assert await outsider.error_code("subscribe", {"channel": "team:red"}) == -32003
        assert await outsider.error_code("history", {"channel": "team:red"}) == -32003
        assert await outsider.error_code("publish", {"channel": "team:red", "data": 1}) == -32003
        await outsider.result("subscribe", {"channel": "team:other"})
        await member.result("publish", {"channel": "team:red", "data": "hello"})
        assert [p["data"] for p in await member.publications_until(1)] == ["hello"]
        # Published after "hello": once it is in, "hello" would have come before it.
        await member.result("publish", {"channel": "team:other", "data": "marker"})
        assert [p["data"] for p in await outsider.publications_until(1)] == ["marker"]


async def test_origin_allow_list(gateway: Gateway) -> None:
    async with websockets.connect(f"{gateway.ws_url}/ws", origin="http://evil.example") as socket:  # type: ignore[arg-type]
        with pytest.raises(websockets.ConnectionClosed):
            await socket.recv()
        assert socket.close_code == 4403
    async with websockets.connect(f"{gateway.ws_url}/ws", origin=ALLOWED_ORIGIN) as socket:  # type: ignore[arg-type]
        await socket.send('{"jsonrpc":"2.0","id":1,"method":"ping"}')
        assert "error" in await socket.recv()  # reached the protocol: not connected yet


def test_sse_needs_the_jobs_token(http: httpx.Client, alices_job: dict[str, Any]) -> None:
    params = {"channel": alices_job["channel"]}
    assert http.get("/sse", params=params).status_code == 404
    with http.stream(
        "GET", "/sse", params={**params, "token": alices_job["subscribe_token"]}
    ) as response:
        assert response.status_code == 200
        events = [line for line in response.iter_lines() if line.startswith("data:")]
    assert len(events) == 4  # queued, started, result, then the end marker
    forbidden = http.get("/sse", params={**params}, headers={"Origin": "http://evil.example"})
    assert forbidden.status_code == 403


def test_publish_api_needs_a_key_and_is_idempotent(http: httpx.Client) -> None:
    channel = f"chat:{uuid.uuid4().hex}"
    path = f"/channels/{channel}/publications"
    assert http.post(path, json={"data": 1}).status_code == 401
    assert http.post(path, json={"data": 1}, headers={"X-API-Key": "wrong"}).status_code == 401
    key = {"X-API-Key": API_KEY, "Idempotency-Key": "order-17"}
    first = http.post(path, json={"data": {"n": 1}}, headers=key)
    retry = http.post(path, json={"data": {"n": 1}}, headers=key)
    assert first.status_code == retry.status_code == 200
    assert first.json() == retry.json()
    other = http.post(path, json={"data": 2}, headers={"Authorization": "apikey old-key"})
    assert other.status_code == 200
    assert other.json()["offset"] != first.json()["offset"]
    api = {"X-API-Key": API_KEY}
    assert (
        http.post("/channels/job:x/publications", json={"data": 1}, headers=api).status_code == 403
    )
    assert (
        http.post("/channels/nope:x/publications", json={"data": 1}, headers=api).status_code == 404
    )
    assert http.post("/channels/bad/publications", json={"data": 1}, headers=api).status_code == 422
    assert http.post(path, json={"other": 1}, headers=api).status_code == 422
    long_key = {**api, "Idempotency-Key": "k" * 200}
    assert http.post(path, json={"data": 1}, headers=long_key).status_code == 422


async def test_history_shows_the_idempotent_publish_once(
    gateway: Gateway, http: httpx.Client
) -> None:
    channel = f"chat:{uuid.uuid4().hex}"
    headers = {"X-API-Key": API_KEY, "Idempotency-Key": "once"}
    for _ in range(3):
        http.post(f"/channels/{channel}/publications", json={"data": "x"}, headers=headers)
    async with rpc(gateway.ws_url) as client:
        await connected(client, "dave")
        history = await client.result("history", {"channel": channel})
        assert [p["data"] for p in history["publications"]] == ["x"]


async def test_a_token_from_pushgate_token_opens_a_connection(gateway: Gateway) -> None:
    minted = subprocess.run(
        [str(BIN / "pushgate"), "token", "--sub", "cli-user", "--ttl", "60"],
        env={**os.environ, "PUSHGATE_JWT_SECRET": JWT_SECRET},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    async with rpc(gateway.ws_url) as client:
        result = await client.result("connect", {"token": minted})
    assert result["user"] == "cli-user"
    assert result["expires_at"] is not None
