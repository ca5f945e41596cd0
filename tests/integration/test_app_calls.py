"""The application's calls (``rpc``) against a real gateway serving ``tests/rpc_routes.py``:
functions and per-connection classes, errors both ways, order, timeouts and every limit."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pushgate.cli.processes import free_port
from pushgate.client import PushgateClient, RpcError
from pushgate.core.auth import connection_token
from pushgate.core.errors import RpcCode
from tests.rpc import RawRpc, rpc
from tests.stack import BIN, Gateway, Stack

ROUTES = {"PUSHGATE_RPC_ROUTES": "tests.rpc_routes:ROUTES", "PUSHGATE_RPC_TIMEOUT": "1"}
AUTH_SECRET = "app-calls-secret-" + "s" * 32
LOG_WAIT = 10.0


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("app-calls") / "gateway.log"


@pytest.fixture(scope="module")
def gateway(stack: Stack, log_path: Path) -> Iterator[Gateway]:
    with log_path.open("wb") as log, stack.extra_gateway(ROUTES, log) as started:
        yield started


@pytest.fixture(scope="module")
def tight(stack: Stack) -> Iterator[Gateway]:
    """The same routes with small limits: 3 calls of burst, 2 rpc calls queued, 1 KiB frames,
    one thread for sync handlers."""
    env = {
        **ROUTES,
        "PUSHGATE_CLIENT_RATE": "0.5",
        "PUSHGATE_CLIENT_BURST": "3",
        "PUSHGATE_RPC_MAX_QUEUED": "2",
        "PUSHGATE_MAX_MESSAGE_BYTES": "1024",
        "PUSHGATE_RPC_THREADS": "1",
    }
    with stack.extra_gateway(env) as started:
        yield started


def url(gateway: Gateway) -> str:
    return f"{gateway.ws_url}/ws"


async def send_rpc(client: RawRpc, request_id: int | str, method: str, params: Any = None) -> None:
    rpc_params: dict[str, Any] = {"method": method}
    if params is not None:
        rpc_params["params"] = params
    request = {"jsonrpc": "2.0", "id": request_id, "method": "rpc", "params": rpc_params}
    await client.send(request)


async def rpc_result(client: RawRpc, method: str, params: Any) -> Any:
    response = await client.call("rpc", {"method": method, "params": params})
    assert "result" in response, response
    return response["result"]


async def answers(client: RawRpc, count: int) -> list[dict[str, Any]]:
    """The next ``count`` responses, in the order they arrive."""
    got: list[dict[str, Any]] = []
    while len(got) < count:
        message = await client.recv()
        if "id" in message and "method" not in message:
            got.append(message)
    return got


async def rpc_error(client: PushgateClient, method: str, params: Any = None) -> RpcError:
    with pytest.raises(RpcError) as caught:
        await client.rpc(method, params)
    return caught.value


async def logged(path: Path, *needles: str) -> str:
    """The gateway's log once it holds every needle (it writes each line as it happens)."""
    deadline = time.monotonic() + LOG_WAIT
    while True:
        text = path.read_text(errors="replace")
        if all(needle in text for needle in needles) or time.monotonic() > deadline:
            return text
        await asyncio.sleep(0.05)


# Functions and classes


async def test_a_function_gets_the_connections_context_and_any_json(gateway: Gateway) -> None:
    async with rpc(gateway.ws_url) as client:
        connected = await client.result("connect")
        params = {"nested": [1, "two", None, {"three": 3.5}]}
        result = await client.result("rpc", {"method": "whoami", "params": params})
        assert result == {"user": None, "client": connected["client"], "params": params}
        nothing = await client.result("rpc", {"method": "whoami"})
        assert nothing["params"] is None and nothing["client"] == connected["client"]


async def test_a_sync_function_runs_off_the_event_loop(gateway: Gateway) -> None:
    async with PushgateClient(url(gateway)) as client:
        assert await client.rpc("total", [1, 2, 3]) == {"sum": 6, "on_loop_thread": False}


async def test_a_class_lives_with_its_connection_and_only_its_public_methods_are_reachable(
    gateway: Gateway,
) -> None:
    async with PushgateClient(url(gateway)) as ann, PushgateClient(url(gateway)) as bob:
        assert await ann.rpc("tally.add", "a1") == ["a1"]
        assert await bob.rpc("tally.add", "b1") == ["b1"]
        assert await ann.rpc("tally.add", "a2") == ["a1", "a2"]
        for unreachable in ("tally._wipe", "tally.__init__", "tally.size", "tally.seen", "tally"):
            error = await rpc_error(ann, unreachable)
            assert error.code == RpcCode.RPC_UNKNOWN_METHOD, unreachable
        assert (await ann.rpc("tally.get"))["seen"] == ["a1", "a2"]  # _wipe never ran
    async with PushgateClient(url(gateway)) as ann_again:
        assert (await ann_again.rpc("tally.get"))["seen"] == []  # dropped with its connection


async def test_a_closed_connections_instances_are_dropped(gateway: Gateway) -> None:
    async with PushgateClient(url(gateway)) as watcher:
        before = await watcher.rpc("live_tallies")
        async with PushgateClient(url(gateway)) as client:
            await client.rpc("tally.add", 1)
            assert await watcher.rpc("live_tallies") == before + 1
        for _ in range(100):  # the gateway sees the close on its next read
            if await watcher.rpc("live_tallies") == before:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the instance of a closed connection is still alive")


@pytest.mark.parametrize("method", ["nope", "whoami.x", "tally.nothing", "_private"])
async def test_unknown_methods(gateway: Gateway, method: str) -> None:
    async with rpc(gateway.ws_url) as client:
        response = await client.call("rpc", {"method": method})
        expected = RpcCode.INVALID_PARAMS if method.startswith("_") else RpcCode.RPC_UNKNOWN_METHOD
        assert response["error"]["code"] == expected, response


# Errors


async def test_a_python_exception_reaches_the_caller_with_its_type_and_message(
    gateway: Gateway, log_path: Path
) -> None:
    async with PushgateClient(url(gateway)) as client:
        error = await rpc_error(client, "fail", [1, 2])
        assert error.code == RpcCode.RPC_ERROR
        assert error.data == {"type": "ValueError", "message": "cannot take [1, 2]"}
        assert error.message == "ValueError: cannot take [1, 2]"
        assert "Traceback" not in str(error.data)
        not_json = await rpc_error(client, "not_json")
        assert not_json.code == RpcCode.RPC_ERROR and not_json.data is not None
        assert not_json.data["type"] == "TypeError"
        refused = await rpc_error(client, "refuse")
        assert refused.code == RpcCode.PERMISSION_DENIED  # a PushgateError keeps its own code
        assert refused.message == "not for you"
        assert await client.rpc("total", [2]) == {"sum": 2, "on_loop_thread": False}
    text = await logged(log_path, "cannot take [1, 2]")
    assert "rpc fail raised ValueError('cannot take [1, 2]')" in text
    assert 'rpc_routes.py", line' in text  # with its traceback, for the app's developers


async def test_a_call_is_answered_within_the_timeout_of_its_arrival(gateway: Gateway) -> None:
    async with rpc(gateway.ws_url) as client:
        started = time.monotonic()
        await send_rpc(client, 1, "nap", 30)
        await send_rpc(client, 2, "block", 30)  # a sync one: its thread cannot be stopped
        first, second = await answers(client, 2)
        elapsed = time.monotonic() - started
        print(f"two 30 s calls with PUSHGATE_RPC_TIMEOUT=1 answered after {elapsed:.2f} s")
        assert [first["id"], second["id"]] == [1, 2]
        for answer in (first, second):
            assert answer["error"]["code"] == RpcCode.RPC_TIMEOUT, answer
        assert "did not finish within 1 s" in first["error"]["message"]
        assert await rpc_result(client, "nap", 0) == 0


# Order


async def test_calls_of_one_connection_run_one_at_a_time_in_order(gateway: Gateway) -> None:
    async with rpc(gateway.ws_url) as client:
        for n in range(6):  # each add sleeps first: overlapping calls would interleave
            await send_rpc(client, n, "tally.add", n)
        got = await answers(client, 6)
        assert [answer["id"] for answer in got] == list(range(6))
        assert [answer["result"] for answer in got] == [list(range(n + 1)) for n in range(6)]


async def test_a_slow_call_holds_up_neither_other_methods_nor_other_connections(
    gateway: Gateway,
) -> None:
    async with rpc(gateway.ws_url) as client, rpc(gateway.ws_url) as other:
        await send_rpc(client, "slow", "block", 0.5)
        await client.send({"jsonrpc": "2.0", "id": "ping", "method": "ping"})
        await send_rpc(other, "quick", "whoami")
        assert (await answers(other, 1))[0]["id"] == "quick"
        first, second = await answers(client, 2)
        assert [first["id"], second["id"]] == ["ping", "slow"]
        assert second["result"] == 0.5


# Publishing


async def test_a_handler_publishes_like_the_server_async_or_not(gateway: Gateway) -> None:
    channel = f"feed:{uuid.uuid4().hex}"  # `feed` lets no client publish
    async with rpc(gateway.ws_url) as client:
        await client.result("subscribe", {"channel": channel})
        assert await client.error_code("publish", {"channel": channel, "data": 0}) == -32003
        for method, data in (("shout", "one"), ("shout_sync", "two")):
            shout = {"channel": channel, "data": data}
            published = await client.result("rpc", {"method": method, "params": shout})
            assert set(published) == {"offset", "epoch"}
        got = await client.publications_until(2)
        assert [p["data"] for p in got] == ["one", "two"]
        job = {"channel": "job:someone-elses", "data": "forged"}
        response = await client.call("rpc", {"method": "shout", "params": job})
        assert response["error"]["code"] == RpcCode.PERMISSION_DENIED


# Calls to the client


async def test_the_server_calls_the_client_with_ids_of_its_own(
    gateway: Gateway, log_path: Path
) -> None:
    async with rpc(gateway.ws_url) as client:
        await send_rpc(client, 1, "ask", {"method": "confirm", "params": {"total": 3}})
        call = await client.recv()
        assert call == {
            "jsonrpc": "2.0", "id": "s1", "method": "confirm", "params": {"total": 3},
        }  # fmt: skip
        await client.send({"jsonrpc": "2.0", "id": "s99", "result": "not asked"})  # dropped
        await client.send({"jsonrpc": "2.0", "id": call["id"], "result": {"ok": True}})
        assert (await answers(client, 1))[0] == {"jsonrpc": "2.0", "id": 1, "result": {"ok": True}}

        await send_rpc(client, 2, "ask", {"method": "confirm"})
        call = await client.recv()
        assert call["id"] == "s2"
        stack = "Error: no\n    at confirm (https://app.example/page.js:12:7)"
        data = {"type": "Error", "message": "no", "stack": stack}
        error = {"code": -32050, "message": "no", "data": data}
        await client.send({"jsonrpc": "2.0", "id": "s2", "error": error})
        (answer,) = await answers(client, 1)
        assert answer["error"]["code"] == RpcCode.RPC_ERROR
        assert answer["error"]["data"] == {
            "type": "ClientCallError", "message": "client handler confirm failed: Error: no",
        }  # fmt: skip
        assert await client.result("ping") == {}
    text = await logged(log_path, "page.js:12:7")
    assert "WARNING gateway.rpc.client_calls: client handler confirm failed: Error: no" in text
    assert stack in text  # the client's own stack, as it sent it


async def test_client_handlers_of_the_python_client(gateway: Gateway) -> None:
    async with PushgateClient(url(gateway)) as client:

        async def double(params: int) -> int:
            return params * 2

        def refuse(params: Any) -> None:
            raise PermissionError("the user said no")

        client.register("double", double)
        client.register("refuse", refuse)
        client.register("wait", lambda n: asyncio.sleep(0.3, n))
        assert await client.rpc("ask", {"method": "double", "params": 21}) == 42
        refused = await rpc_error(client, "ask", {"method": "refuse"})
        assert refused.data is not None
        assert refused.data["message"] == (
            "client handler refuse failed: PermissionError: the user said no"
        )
        missing = await rpc_error(client, "ask", {"method": "missing"})
        assert missing.data is not None
        assert missing.data["message"] == "the client has no handler for missing"
        late = await rpc_error(client, "ask", {"method": "wait", "params": 1, "timeout": 0.05})
        assert late.data is not None
        assert late.data["message"] == "the client did not answer wait within 0.05 s"


async def test_calls_waiting_for_one_client_are_bounded(gateway: Gateway) -> None:
    async with PushgateClient(url(gateway)) as client:
        client.register("wait", lambda n: asyncio.sleep(0.3, n))
        got = await client.rpc("ask_many", 20)
        assert got[:16] == [str(n) for n in range(16)]  # PUSHGATE_RPC_CLIENT_CALLS
        assert got[16:] == ["ClientCallError: cannot call wait: 16 calls already wait"] * 4


# Limits


async def test_sync_handlers_share_a_pool_of_rpc_threads(tight: Gateway) -> None:
    clients = [PushgateClient(url(tight)) for _ in range(3)]
    try:
        for client in clients:
            await client.connect()
        names = await asyncio.gather(*(client.rpc("thread", 0.1) for client in clients))
    finally:
        for client in clients:
            await client.close()
    assert names == ["pushgate-rpc_0"] * 3  # PUSHGATE_RPC_THREADS=1: one thread, in turn


async def test_rpc_counts_against_the_call_rate_of_the_connection(tight: Gateway) -> None:
    async with rpc(tight.ws_url) as client:
        for n in range(3):
            assert await rpc_result(client, "nap", 0) == 0, n
        response = await client.call("rpc", {"method": "nap", "params": 0})
        assert response["error"]["code"] == RpcCode.RATE_LIMITED


async def test_rpc_calls_waiting_on_a_connection_are_bounded(tight: Gateway) -> None:
    async with rpc(tight.ws_url) as client:
        for n in range(3):
            await send_rpc(client, n, "nap", 0.3)
        got = {answer["id"]: answer for answer in await answers(client, 3)}
        assert got[0]["result"] == got[1]["result"] == 0.3
        assert got[2]["error"]["code"] == RpcCode.LIMIT_EXCEEDED
        assert "at most 2 rpc calls" in got[2]["error"]["message"]


async def test_an_rpc_frame_over_the_size_limit_closes_the_socket(tight: Gateway) -> None:
    async with rpc(tight.ws_url) as client:
        await send_rpc(client, 1, "whoami", "x" * 2000)
        code, reason = await client.closed()
        assert code == 1009
        assert "over 1024 bytes" in reason


async def test_rpc_needs_connect_first_with_auth_on(stack: Stack) -> None:
    env = {**ROUTES, "PUSHGATE_JWT_SECRET": AUTH_SECRET, "PUSHGATE_AUTH_DISABLED": "false"}
    with stack.extra_gateway(env) as started:
        async with rpc(started.ws_url) as client:
            response = await client.call("rpc", {"method": "whoami"})
            assert response["error"]["code"] == RpcCode.UNAUTHORIZED
            token = connection_token(AUTH_SECRET, "ann", now=time.time())
            await client.result("connect", {"token": token})
            assert (await client.result("rpc", {"method": "whoami"}))["user"] == "ann"


# The command line


def test_pushgate_rpc_prints_the_result_or_the_error(gateway: Gateway) -> None:
    def pushgate_rpc(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [str(BIN / "pushgate"), "rpc", "--gateway", gateway.http_url, *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)

    ok = pushgate_rpc("total", "[1, 2, 3]")
    assert (ok.returncode, json.loads(ok.stdout)) == (0, {"sum": 6, "on_loop_thread": False})
    assert json.loads(pushgate_rpc("whoami").stdout)["params"] is None
    failed = pushgate_rpc("fail", '"x"')
    assert failed.returncode == 2
    assert failed.stderr.strip() == "pushgate: rpc error (-32050): ValueError: cannot take 'x'"
    assert pushgate_rpc("total", "not json").returncode == 2


# Start-up


async def test_pushgate_gateway_imports_routes_from_its_working_directory(stack: Stack) -> None:
    # A console script has no working directory on its import path; the gateway adds it.
    if "PYTHONPATH" in stack.env:
        pytest.skip("PYTHONPATH is set: it may name the working directory itself")
    started = await asyncio.to_thread(stack.start_drainable_gateway, ROUTES)
    try:
        async with PushgateClient(url(started)) as client:
            assert (await client.rpc("whoami", 1))["params"] == 1
    finally:
        await asyncio.to_thread(stack.stop_gateway, started)


@pytest.mark.parametrize("command", ["uvicorn", "pushgate gateway"])
@pytest.mark.parametrize(
    ("env", "says"),
    [
        (
            {"PUSHGATE_RPC_ROUTES": "tests.no_such_module:ROUTES"},
            "PUSHGATE_RPC_ROUTES='tests.no_such_module:ROUTES': cannot import tests.no_such_module",
        ),
        (
            {"PUSHGATE_RPC_ROUTES": "tests.rpc_routes:whoami"},
            "whoami must be a dict of name -> function or class, found function",
        ),
        (
            {
                "PUSHGATE_RPC_ROUTES": "tests.rpc_routes:ROUTES",
                "PUSHGATE_RPC_PROXY_URL": "http://x",
            },
            "set PUSHGATE_RPC_ROUTES or PUSHGATE_RPC_PROXY_URL, not both",
        ),
    ],
)
def test_routes_that_cannot_work_stop_the_gateway_saying_why(
    stack: Stack, command: str, env: dict[str, str], says: str
) -> None:
    port = str(free_port())
    if command == "uvicorn":
        argv = [str(BIN / "uvicorn"), "gateway.app:app", "--port", port]
    else:
        argv = [str(BIN / "pushgate"), "gateway", "--port", port]
    result = subprocess.run(
        argv, env={**stack.env, **env}, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert says in result.stderr
