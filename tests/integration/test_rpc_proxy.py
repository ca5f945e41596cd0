"""The RPC proxy against a real backend process (``tests/rpc_backend.py``): what it is sent,
how each answer maps to an error code, its timeout and its concurrency limit."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from pushgate.cli.processes import free_port, python_module, spawn, stop
from pushgate.client import PushgateClient, RpcError
from pushgate.core.auth import connection_token
from pushgate.core.errors import RpcCode
from tests.stack import Gateway, Stack, wait_until_up

SECRET = "proxy-test-secret-" + "p" * 32


@pytest.fixture(scope="module")
def backend_url() -> Iterator[str]:
    port = free_port()
    argv = python_module("uvicorn", "tests.rpc_backend:app", "--port", str(port))
    process = spawn([*argv, "--log-level", "warning"])
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(process, f"{base}/healthz")
        yield f"{base}/rpc"
    finally:
        stop(process)


def proxy_env(url: str, **extra: str) -> dict[str, str]:
    return {"PUSHGATE_RPC_PROXY_URL": url, "PUSHGATE_RPC_TIMEOUT": "1", **extra}


@pytest.fixture(scope="module")
def gateway(stack: Stack, backend_url: str) -> Iterator[Gateway]:
    env = proxy_env(backend_url, PUSHGATE_RPC_PROXY_CONCURRENCY="2")
    with stack.extra_gateway(env) as started:
        yield started


@pytest.fixture(scope="module")
def auth_gateway(stack: Stack, backend_url: str) -> Iterator[Gateway]:
    env = proxy_env(backend_url, PUSHGATE_JWT_SECRET=SECRET, PUSHGATE_AUTH_DISABLED="false")
    with stack.extra_gateway(env) as started:
        yield started


def url(gateway: Gateway) -> str:
    return f"{gateway.ws_url}/ws"


async def rpc_error(gateway: Gateway, method: str, params: Any = None) -> RpcError:
    async with PushgateClient(url(gateway)) as client:
        with pytest.raises(RpcError) as caught:
            await client.rpc(method, params)
        return caught.value


async def test_each_call_is_posted_with_the_callers_identity_and_token(
    auth_gateway: Gateway,
) -> None:
    token = connection_token(SECRET, "ann", now=time.time())
    async with PushgateClient(url(auth_gateway), token=token) as client:
        got = await client.rpc("whoami", {"n": [1, 2]})
    assert got["method"] == "whoami"
    assert got["params"] == {"n": [1, 2]}
    assert got["user"] == "ann"
    assert isinstance(got["client"], str) and got["client"]
    assert got["authorization"] == f"Bearer {token}"


async def test_without_auth_nothing_is_forwarded_but_the_call(gateway: Gateway) -> None:
    async with PushgateClient(url(gateway), token="never-checked") as client:
        got = await client.rpc("whoami")
    assert got["user"] is None and got["params"] is None and got["authorization"] is None


@pytest.mark.parametrize(
    ("method", "params", "code", "data"),
    [
        ("fail", None, RpcCode.RPC_ERROR, {"type": "KeyError", "message": "no such key"}),
        ("missing", None, RpcCode.RPC_UNKNOWN_METHOD, None),
        ("status", 401, RpcCode.UNAUTHORIZED, None),
        ("status", 403, RpcCode.PERMISSION_DENIED, None),
        ("status", 503, RpcCode.UNAVAILABLE, None),
        ("status", 500, RpcCode.RPC_ERROR, "ProxyError"),
        ("not_json", None, RpcCode.RPC_ERROR, "ProxyError"),
        ("neither", None, RpcCode.RPC_ERROR, "ProxyError"),
        ("huge", None, RpcCode.RPC_ERROR, "ProxyError"),
        ("slow", 5, RpcCode.RPC_TIMEOUT, None),
    ],
)
async def test_every_answer_of_the_backend_maps_to_a_code(
    gateway: Gateway, method: str, params: Any, code: RpcCode, data: object
) -> None:
    error = await rpc_error(gateway, method, params)
    assert error.code == code, error
    if isinstance(data, str):
        assert error.data is not None and error.data["type"] == data
    else:
        assert error.data == data


async def test_requests_in_flight_are_bounded_per_gateway(gateway: Gateway) -> None:
    clients = [PushgateClient(url(gateway)) for _ in range(6)]
    try:
        for client in clients:
            await client.connect()
        tag = uuid.uuid4().hex
        calls = (client.rpc("slow", [0.2, tag]) for client in clients[:4])
        assert await asyncio.gather(*calls) == [0.2] * 4  # each waited its turn, within 1 s
        assert await clients[4].rpc("flight", tag) == 2  # PUSHGATE_RPC_PROXY_CONCURRENCY
    finally:
        for client in clients:
            await client.close()


async def test_an_unreachable_backend_is_unavailable(stack: Stack) -> None:
    closed = f"http://127.0.0.1:{free_port()}/rpc"
    with stack.extra_gateway(proxy_env(closed)) as started:
        error = await rpc_error(started, "whoami")
        assert error.code == RpcCode.UNAVAILABLE
        assert error.retryable
