"""``WS /ws`` against real gateways (auth off): fan-out, resume, history, errors and limits."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.origin import Origin
from tests.rpc import RawRpc, rpc
from tests.stack import Gateway, Stack


def room(namespace: str = "chat") -> str:
    return f"{namespace}:{uuid.uuid4().hex}"


async def publish(client: RawRpc, channel: str, data: object) -> str:
    result = await client.result("publish", {"channel": channel, "data": data})
    return str(result["offset"])


async def test_publication_reaches_every_subscriber_on_every_replica_once_in_order(
    stack: Stack,
) -> None:
    channel = room()
    a, b = stack.gateways[0], stack.gateways[1]
    async with rpc(a.ws_url) as one, rpc(b.ws_url) as two, rpc(b.ws_url) as publisher:
        for client in (one, two):
            subscribed = await client.result("subscribe", {"channel": channel})
            assert subscribed == {"channel": channel, "epoch": "", "offset": ""}
        offsets = [await publish(publisher, channel, {"n": n}) for n in range(20)]
        for client in (one, two):
            got = await client.publications_until(20)
            assert [p["offset"] for p in got] == offsets
            assert [p["data"] for p in got] == [{"n": n} for n in range(20)]
            assert {p["channel"] for p in got} == {channel}
            assert len({p["epoch"] for p in got}) == 1
        # A marker published last arrives after anything the 20 could still bring (order holds).
        marker = await publish(publisher, channel, "end")
        for client in (one, two):
            assert [p["offset"] for p in await client.publications_until(21)] == [*offsets, marker]


async def test_resume_with_since_replays_exactly_what_was_missed(stack: Stack) -> None:
    channel = room()
    gateway = stack.gateways[0]
    async with rpc(gateway.ws_url) as publisher:
        await publish(publisher, channel, "before")
        async with rpc(gateway.ws_url) as client:
            subscribed = await client.result("subscribe", {"channel": channel})
            seen = await publish(publisher, channel, "seen")
            await client.publications_until(1)
            assert client.publications[0]["offset"] == seen
        missed = [await publish(publisher, channel, f"missed {n}") for n in range(3)]
        async with rpc(stack.gateways[1].ws_url) as client:
            since = {"epoch": subscribed["epoch"] or client_epoch(publisher), "offset": seen}
            resumed = await client.result("subscribe", {"channel": channel, "since": since})
            assert resumed["recovered"] is True
            assert resumed["offset"] == missed[-1]
            live = await publish(publisher, channel, "live")
            got = await client.publications_until(4)
            assert [p["offset"] for p in got] == [*missed, live]


def client_epoch(_publisher: RawRpc) -> str:
    raise AssertionError("the channel had history, so subscribe must have reported its epoch")


async def test_resume_reports_not_recovered_when_history_is_gone(stack: Stack) -> None:
    channel = room("tiny")  # keeps 3 publications
    async with rpc(stack.gateways[0].ws_url) as client:
        first = await publish(client, channel, 0)
        epoch = (await client.result("history", {"channel": channel}))["epoch"]
        for n in range(1, 6):
            await publish(client, channel, n)
        trimmed = {"channel": channel, "since": {"epoch": epoch, "offset": first}}
        assert (await client.result("subscribe", trimmed))["recovered"] is False
        await client.result("unsubscribe", {"channel": channel})
        other_epoch = {"channel": channel, "since": {"epoch": "1-0", "offset": "1-0"}}
        result = await client.result("subscribe", other_epoch)
        assert result["recovered"] is False
        live = await publish(client, channel, "live")
        got = await client.publications_until(1)
        assert [p["offset"] for p in got] == [live]  # never a silent partial replay before it


async def test_history_latest_and_since(stack: Stack) -> None:
    channel = room()
    async with rpc(stack.gateways[0].ws_url) as client:
        empty = await client.result("history", {"channel": channel})
        assert empty == {"channel": channel, "epoch": "", "offset": "", "publications": []}
        offsets = [await publish(client, channel, n) for n in range(5)]
        latest = await client.result("history", {"channel": channel, "limit": 2})
        assert [p["offset"] for p in latest["publications"]] == offsets[3:]
        assert [p["data"] for p in latest["publications"]] == [3, 4]
        since = {"epoch": latest["epoch"], "offset": offsets[1]}
        after = await client.result("history", {"channel": channel, "since": since, "limit": 2})
        assert after["recovered"] is True
        assert [p["offset"] for p in after["publications"]] == offsets[2:4]
        lost = {"epoch": "1-0", "offset": "1-0"}
        gone = await client.result("history", {"channel": channel, "since": lost})
        assert gone["recovered"] is False
        assert [p["offset"] for p in gone["publications"]] == offsets


async def test_submit_and_subscribe_in_one_call(stack: Stack, origin: Origin) -> None:
    async with rpc(stack.gateways[1].ws_url) as client:
        params = {"url": origin.url("/pages/links.html"), "subscribe": True}
        submitted = await client.result("submit", params)
        assert submitted["status"] == "queued"
        assert submitted["channel"] == f"job:{submitted['request_id']}"
        got = await client.publications_until(3)
        assert [p["data"]["type"] for p in got] == ["queued", "started", "result"]
        again = await client.call("submit", {**params, "request_id": submitted["request_id"]})
        assert again["error"]["code"] == -32602  # already subscribed to that job


async def test_errors_answer_and_the_socket_stays_open(stack: Stack) -> None:
    async with rpc(stack.gateways[0].ws_url) as client:
        await client.send("{not json")
        assert (await client.recv())["error"]["code"] == -32700
        await client.send([{"jsonrpc": "2.0", "id": 1, "method": "ping"}])
        assert (await client.recv())["error"]["code"] == -32600
        assert await client.error_code("nope") == -32601
        assert await client.error_code("subscribe", {"channel": "bad"}) == -32602
        assert await client.error_code("subscribe", {"channel": "unknown:x"}) == -32004
        assert await client.error_code("subscribe", {"channel": "job:missing"}) == -32004
        assert await client.error_code("publish", {"channel": "job:x", "data": 1}) == -32003
        assert await client.error_code("publish", {"channel": "feed:x", "data": 1}) == -32003
        assert await client.error_code("submit", {"url": "file:///etc/passwd"}) == -32602
        submitted = await client.result("submit", {"url": "http://127.0.0.1:9/a"})
        conflict = {"url": "http://127.0.0.1:9/b", "request_id": submitted["request_id"]}
        assert await client.error_code("submit", conflict) == -32009
        await client.send({"jsonrpc": "2.0", "method": "nope"})  # a notification: no answer
        assert await client.result("ping") == {}


@pytest.fixture(scope="module")
def strict(stack: Stack) -> Iterator[Gateway]:
    """A gateway with small limits, so each one can be hit."""
    gateway = stack.start_gateway(
        {
            "PUSHGATE_MAX_SUBSCRIPTIONS": "2",
            "PUSHGATE_MAX_CONNECTIONS": "3",
            "PUSHGATE_MAX_MESSAGE_BYTES": "1024",
            "PUSHGATE_CLIENT_RATE": "1",
            "PUSHGATE_CLIENT_BURST": "10",
            "PUSHGATE_WS_QUEUE_SIZE": "8",
            # Long enough that the slow client below is closed for its queue, not a timeout.
            "PUSHGATE_WS_SEND_TIMEOUT": "60",
        }
    )
    yield gateway
    stack.stop_gateway(gateway)


async def test_oversized_message_closes_1009_and_others_carry_on(strict: Gateway) -> None:
    async with rpc(strict.ws_url) as big, rpc(strict.ws_url) as other:
        await big.send({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": "y" * 2000}})
        code, _ = await big.closed()
        assert code == 1009
        assert await other.result("ping") == {}


async def test_subscription_limit(strict: Gateway) -> None:
    async with rpc(strict.ws_url) as client:
        await client.result("subscribe", {"channel": room()})
        await client.result("subscribe", {"channel": room()})
        assert await client.error_code("subscribe", {"channel": room()}) == -32005


async def test_rate_limit(strict: Gateway) -> None:
    async with rpc(strict.ws_url) as client:
        codes = [await client.error_code("nope") for _ in range(10)]
        assert set(codes) == {-32601}
        assert await client.error_code("ping") == -32029


async def test_connection_cap_refuses_with_4429(strict: Gateway) -> None:
    async with rpc(strict.ws_url) as a, rpc(strict.ws_url) as b, rpc(strict.ws_url) as c:
        for client in (a, b, c):
            assert await client.result("ping") == {}
        async with rpc(strict.ws_url) as refused:
            code, _ = await refused.closed()
            assert code == 4429
    async with rpc(strict.ws_url) as later:  # freed again
        assert await later.result("ping") == {}


async def test_slow_consumer_is_closed_and_slows_nobody(strict: Gateway, stack: Stack) -> None:
    channel = room()
    async with rpc(strict.ws_url, receive_buffer=8192) as slow, rpc(strict.ws_url) as reader:
        for client in (slow, reader):
            await client.result("subscribe", {"channel": channel})
        # `slow` reads nothing from here on: its TCP buffers fill, then its outbox.
        reading = asyncio.create_task(reader.publications_until(300))
        payload = "x" * 50_000
        url = f"{stack.gateways[0].http_url}/channels/{channel}/publications"
        async with httpx.AsyncClient(timeout=10) as http:
            for n in range(300):
                response = await http.post(url, json={"data": {"n": n, "pad": payload}})
                assert response.status_code == 200
        got = await reading
        assert [p["data"]["n"] for p in got] == list(range(300))
        code, reason = await slow.closed()
        assert code == 4408
        assert "not reading" in reason
        assert len(slow.publications) < 300


async def test_subscribing_to_a_channel_already_live_here_starts_after_its_newest(
    stack: Stack,
) -> None:
    channel = room()
    gateway = stack.gateways[0]
    async with rpc(gateway.ws_url) as first, rpc(gateway.ws_url) as second:
        await first.result("subscribe", {"channel": channel})
        offsets = [await publish(first, channel, n) for n in range(3)]
        await first.publications_until(3)  # the gateway has handed these out
        joined = await second.result("subscribe", {"channel": channel})
        assert joined["offset"] == offsets[-1]
        assert joined["epoch"] == first.publications[0]["epoch"]
        after = await publish(first, channel, "after")
        got = await second.publications_until(1)
        assert [p["offset"] for p in got] == [after]
