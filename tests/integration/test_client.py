"""The client library and the CLI verbs against real gateway replicas, workers and an origin."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pushgate.cli.processes import free_port, stop
from pushgate.client import (
    ClientClosedError,
    ConnectionLostError,
    Position,
    Publication,
    PushgateClient,
    Subscription,
)
from tests.origin import Origin
from tests.stack import Gateway, Stack

WAIT = 30.0
PUSHGATE = Path(sys.executable).parent / "pushgate"


def rpc_url(gateway: Gateway) -> str:
    return f"{gateway.ws_url}/ws"


def new_channel() -> str:
    return f"chat:{uuid.uuid4().hex}"


async def take(subscription: Subscription, count: int) -> list[Publication]:
    async with asyncio.timeout(WAIT):
        return [await anext(subscription) for _ in range(count)]


async def publish_all(client: PushgateClient, channel: str, items: list[Any]) -> list[str]:
    return [(await client.publish(channel, item))["offset"] for item in items]


def assert_strictly_ordered(publications: list[Publication]) -> None:
    keys = [tuple(map(int, p.offset.split("-"))) for p in publications]
    assert keys == sorted(set(keys))


@pytest.fixture
async def publisher(stack: Stack) -> AsyncIterator[PushgateClient]:
    async with PushgateClient(rpc_url(stack.gateways[0])) as client:
        yield client


# The library


async def test_submit_and_follow_gets_every_event(stack: Stack, origin: Origin) -> None:
    url = origin.url("/pages/links.html")
    async with PushgateClient(rpc_url(stack.gateways[1])) as client:
        job = await client.submit(url, subscribe=True)
        assert job["status"] == "queued"
        assert job["url"] == url
        events = await take(client.subscription(job["channel"]), 3)
    assert [e.data["type"] for e in events] == ["queued", "started", "result"]
    assert {e.data["request_id"] for e in events} == {job["request_id"]}
    assert events[-1].data["final_url"] == url
    assert_strictly_ordered(events)


async def test_publications_cross_replicas_in_order(
    stack: Stack, publisher: PushgateClient
) -> None:
    channel = new_channel()
    async with PushgateClient(rpc_url(stack.gateways[1])) as reader:
        subscription = await reader.subscribe(channel)
        messages = [{"n": 1}, "two", [3], None]
        offsets = await publish_all(publisher, channel, messages)
        received = await take(subscription, len(messages))
        history = await reader.history(channel, limit=2)
    assert [p.data for p in received] == messages
    assert [p.offset for p in received] == offsets
    assert [p["offset"] for p in history["publications"]] == offsets[-2:]


async def test_subscribing_since_a_position_replays_what_came_after(
    stack: Stack, publisher: PushgateClient
) -> None:
    channel = new_channel()
    await publisher.publish(channel, "before")
    first = await publisher.publish(channel, "seen")
    await publish_all(publisher, channel, ["missed-1", "missed-2"])
    since = Position(first["epoch"], first["offset"])
    async with PushgateClient(rpc_url(stack.gateways[1])) as reader:
        subscription = await reader.subscribe(channel, since=since)
        received = await take(subscription, 2)
    assert [p.data for p in received] == ["missed-1", "missed-2"]
    assert subscription.recovered is True


GatewayStop = Callable[[Gateway], None]


@pytest.fixture
def spare_gateways(stack: Stack) -> Iterator[Callable[[], Gateway]]:
    """Starts gateways a test may kill; they leave the stack when the test ends."""
    started: list[Gateway] = []

    def start() -> Gateway:
        started.append(stack.start_gateway())
        return started[-1]

    yield start
    for gateway in started:
        stack.stop_gateway(gateway)


class Replica:
    """The URL factory of a client: the gateway it (re)connects to, and how often it asked."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.asked = 0

    def __call__(self) -> str:
        self.asked += 1
        return rpc_url(self.gateway)

    async def wait_asked(self, times: int) -> None:
        async with asyncio.timeout(WAIT):
            while self.asked < times:
                await asyncio.sleep(0.01)


def kill(gateway: Gateway) -> None:
    gateway.process.kill()  # SIGKILL: the socket dies without a close frame
    gateway.process.wait()


def restart(gateway: Gateway) -> None:
    stop(gateway.process)  # SIGTERM: uvicorn closes every socket with 1012


class Tokens:
    """A token callable; the gateways run without auth, so only the asking is checked."""

    def __init__(self) -> None:
        self.issued = 0

    async def __call__(self) -> str:
        self.issued += 1
        return f"token-{self.issued}"


@pytest.mark.parametrize("halt", [kill, restart], ids=["sigkill", "sigterm"])
async def test_reconnect_resumes_every_publication_exactly_once(
    spare_gateways: Callable[[], Gateway], publisher: PushgateClient, halt: GatewayStop
) -> None:
    channel = new_channel()
    first = spare_gateways()
    replica = Replica(first)
    tokens = Tokens()
    recoveries: list[bool | None] = []
    client = PushgateClient(
        replica,
        token=tokens,
        backoff_min=0.05,
        backoff_max=0.5,
        on_recovery=lambda s: recoveries.append(s.recovered),
    )
    async with client:
        subscription = await client.subscribe(channel)
        before = await publish_all(publisher, channel, ["a", "b", "c"])
        received = await take(subscription, 3)

        halt(first)
        missed = await publish_all(publisher, channel, ["d", "e", "f"])
        # A call made while disconnected waits for the next connection.
        queued_call = asyncio.create_task(client.publish(channel, "g"))
        await replica.wait_asked(3)  # the first connection, then failed attempts
        replica.gateway = spare_gateways()
        received += await take(subscription, 4)
        sent_while_down = (await asyncio.wait_for(queued_call, WAIT))["offset"]
    assert [p.data for p in received] == ["a", "b", "c", "d", "e", "f", "g"]
    assert [p.offset for p in received] == [*before, *missed, sent_while_down]
    assert_strictly_ordered(received)
    assert subscription.recovered is True
    assert recoveries == [True]
    assert tokens.issued == 2  # a fresh token for the new connection


async def test_lost_history_is_reported_not_replayed(
    stack: Stack, spare_gateways: Callable[[], Gateway], publisher: PushgateClient
) -> None:
    channel = new_channel()
    first = spare_gateways()
    replica = Replica(first)
    unrecovered = asyncio.Event()
    client = PushgateClient(
        replica,
        backoff_min=0.05,
        backoff_max=0.5,
        on_recovery=lambda s: unrecovered.set() if s.recovered is False else None,
    )
    async with client:
        subscription = await client.subscribe(channel)
        await publisher.publish(channel, "seen")
        await take(subscription, 1)
        kill(first)
        # More than the namespace's history_size (100): the position is trimmed away. Spread
        # over connections, as each may make at most 100 calls in a burst.
        for chunk in (range(0, 60), range(60, 120)):
            async with PushgateClient(rpc_url(stack.gateways[1])) as bulk:
                await publish_all(bulk, channel, list(chunk))
        replica.gateway = spare_gateways()
        await asyncio.wait_for(unrecovered.wait(), WAIT)
        await publisher.publish(channel, "live")
        (after,) = await take(subscription, 1)
    assert subscription.recovered is False
    assert after.data == "live"


async def test_a_final_close_code_stops_the_client(stack: Stack) -> None:
    channel = new_channel()
    async with PushgateClient(rpc_url(stack.gateways[0]), backoff_min=0.05) as client:
        subscription = await client.subscribe(channel)
        # Over the 64 KiB frame limit: the gateway closes with 1009, "fix the client".
        with pytest.raises(ConnectionLostError) as lost:
            await client.publish(channel, "x" * 70_000)
        assert lost.value.close_code == 1009
        with pytest.raises(ClientClosedError) as closed:
            await client.publish(channel, "small")
        assert closed.value.close_code == 1009
        with pytest.raises(ClientClosedError):
            await take(subscription, 1)


async def test_cannot_connect_fails_fast() -> None:
    client = PushgateClient(f"ws://127.0.0.1:{free_port()}/ws")
    with pytest.raises(ClientClosedError, match="cannot connect"):
        await asyncio.wait_for(client.connect(), WAIT)
    with pytest.raises(ClientClosedError):
        await client.call("ping")


# The CLI, as a real process


def pushgate(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PUSHGATE_GATEWAY_URL": stack.gateways[0].http_url}
    return subprocess.run(
        [str(PUSHGATE), *args], env=env, capture_output=True, text=True, timeout=WAIT * 2
    )


def json_lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines()]


def test_cli_submit_follow_prints_the_events_and_exits_0(stack: Stack, origin: Origin) -> None:
    url = origin.url("/pages/links.html")
    done = pushgate(stack, "submit", url, "--follow", "--request-id", f"cli-{uuid.uuid4().hex}")
    assert done.returncode == 0, done.stderr
    submitted, *events = json_lines(done.stdout)
    assert submitted["status"] == "queued"
    assert [e["type"] for e in events] == ["queued", "started", "result"]
    assert {e["request_id"] for e in events} == {submitted["request_id"]}


def test_cli_submit_follow_exits_1_when_the_job_fails(stack: Stack, origin: Origin) -> None:
    done = pushgate(stack, "submit", origin.url("/missing"), "--follow")
    assert done.returncode == 1, done.stderr
    *_, last = json_lines(done.stdout)
    assert last["type"] == "failed"
    assert last["error"]["code"] == "http_error"


def test_cli_submit_without_follow_prints_one_line(stack: Stack, origin: Origin) -> None:
    done = pushgate(stack, "submit", origin.url("/pages/base.html"))
    assert done.returncode == 0, done.stderr
    (submitted,) = json_lines(done.stdout)
    assert submitted["channel"] == f"job:{submitted['request_id']}"


def test_cli_publish_then_subscribe_since(stack: Stack) -> None:
    channel = new_channel()
    first = pushgate(stack, "publish", channel, '{"n": 1}')
    assert first.returncode == 0, first.stderr
    (position,) = json_lines(first.stdout)
    assert pushgate(stack, "publish", channel, '{"n": 2}').returncode == 0

    env = {**os.environ, "PUSHGATE_GATEWAY_URL": stack.gateways[1].http_url}
    since = f"{position['epoch']}:{position['offset']}"
    with subprocess.Popen(
        [str(PUSHGATE), "subscribe", channel, "--since", since],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as follower:
        try:
            assert follower.stdout is not None
            readable, _, _ = select.select([follower.stdout], [], [], WAIT)
            assert readable, "no publication within the wait"
            line = follower.stdout.readline()  # the replayed publication arrives first
            follower.send_signal(signal.SIGINT)
            assert follower.wait(WAIT) == 0
        finally:
            follower.kill()
    publication = json.loads(line)
    assert publication["channel"] == channel
    assert publication["data"] == {"n": 2}
    assert publication["epoch"] == position["epoch"]


def test_cli_reports_errors_with_exit_2(stack: Stack) -> None:
    unreachable = pushgate(
        stack, "publish", new_channel(), "1", "--gateway", f"http://127.0.0.1:{free_port()}"
    )
    assert unreachable.returncode == 2
    assert "cannot connect" in unreachable.stderr
    refused = pushgate(stack, "publish", "nowhere:x", "1")
    assert refused.returncode == 2
    assert "unknown channel" in refused.stderr
