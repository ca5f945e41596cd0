"""A channel's history lost under live subscribers (its keys deleted, as when it expires or Redis
restarts empty), and a publication that reached the history but no gateway: every transport
tells its clients at once or catches them up, never goes on past a hole."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis.asyncio as aioredis
import websockets

from pushgate.broker.keys import history_key, meta_key
from pushgate.broker.store import Backend
from pushgate.cli.redis_server import RedisServer
from pushgate.client import PushgateClient
from pushgate.core import events
from tests.faults.gateway_faults import POLICY, Acked, Watcher, check, report, until, watch
from tests.stack import Gateway, Stack

WAIT = 20.0
CHECK_SECONDS = 0.5


@pytest.fixture
async def backend(redis_server: RedisServer) -> AsyncIterator[Backend]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield Backend(client, jobs=POLICY)
    await client.aclose()


@pytest.fixture
def checking(stack: Stack) -> Iterator[Gateway]:
    """A gateway that checks its channels' positions twice a second."""
    gateway = stack.start_gateway({"PUSHGATE_POSITION_CHECK_SECONDS": str(CHECK_SECONDS)})
    yield gateway
    stack.stop_gateway(gateway)


async def forget_history(redis_server: RedisServer, channel: str) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    await client.delete(history_key(channel), meta_key(channel))
    await client.aclose()


async def test_rpc_subscribers_are_told_of_a_new_epoch(
    stack: Stack, redis_server: RedisServer, backend: Backend, request: pytest.FixtureRequest
) -> None:
    channel = f"chat:epoch-{uuid.uuid4().hex}"
    watcher = Watcher(channel)
    acked = []
    url = f"{stack.gateways[0].ws_url}/ws"
    async with PushgateClient(url, on_recovery=watcher.on_recovery) as client:
        await watch(client, watcher)
        for n in range(3):
            acked.append(await client.publish(channel, {"n": n}))
        await until(lambda: len(watcher.got) == 3)
        await forget_history(redis_server, channel)
        acked.append(await client.publish(channel, {"n": 3}))  # opens a new epoch
        told = await until(lambda: watcher.unrecovered)
        acked.append(await client.publish(channel, {"n": 4}))
        await until(lambda: len(watcher.got) == 4)
    report(
        request,
        "history lost under a live /ws subscriber (Python client)",
        [
            ("publications got (n)", [n for _e, _o, n in watcher.got]),
            ("recovered answers", [r.recovered for r in watcher.recoveries]),
            ("told after the new epoch's first publication (s)", round(told, 3)),
        ],
    )
    assert [n for _e, _o, n in watcher.got] == [0, 1, 2, 4]  # 3 is in the history to refetch
    assert [r.recovered for r in watcher.recoveries] == [False]
    assert watcher.recoveries[0].position.epoch == acked[3]["epoch"] != acked[0]["epoch"]
    ledger = [Acked(channel, a["epoch"], a["offset"], n, 0.0) for n, a in enumerate(acked)]
    verdict = check(watcher, ledger)
    assert (verdict.lost, verdict.duplicated, verdict.disordered) == (0, 0, 0)


async def test_job_socket_closes_1013_when_its_history_is_lost(
    stack: Stack, redis_server: RedisServer, backend: Backend
) -> None:
    request_id = f"told-{uuid.uuid4().hex}"
    channel = f"job:{request_id}"
    await backend.create_job(request_id, "http://127.0.0.1:9/", "")
    url = f"{stack.gateways[0].ws_url}/ws/jobs/{request_id}"
    async with websockets.connect(url) as socket:
        first = json.loads(await asyncio.wait_for(socket.recv(), WAIT))
        await forget_history(redis_server, channel)
        await backend.publish_job_event(request_id, events.started(request_id, "http://x/", 1))
        with pytest.raises(websockets.ConnectionClosedError):
            await asyncio.wait_for(socket.recv(), WAIT)
    assert first["data"]["type"] == "queued"
    assert socket.close_code == 1013
    assert "since" in (socket.close_reason or "")


async def read_sse(
    http: httpx.AsyncClient, url: str, headers: dict[str, str], stop_at: str | None = None
) -> list[str]:
    """The stream's lines until it ends, or through the line ``stop_at``."""
    lines = []
    async with http.stream("GET", url, headers=headers) as response:
        async for line in response.aiter_lines():
            lines.append(line)
            if line == stop_at:
                break
    return lines


async def test_sse_stream_ends_when_its_history_is_lost_and_resumes_unrecovered(
    stack: Stack, redis_server: RedisServer, backend: Backend
) -> None:
    channel = f"chat:sse-{uuid.uuid4().hex}"
    url = f"{stack.gateways[0].http_url}/sse?channel={channel}"
    async with httpx.AsyncClient(timeout=WAIT) as http:
        stream = asyncio.create_task(read_sse(http, url, {}))
        await asyncio.sleep(0.5)  # subscribed
        first, _ = await backend.publish(channel, {"n": 0}, POLICY)
        await asyncio.sleep(0.3)
        await forget_history(redis_server, channel)
        await backend.publish(channel, {"n": 1}, POLICY)
        lines = await asyncio.wait_for(stream, WAIT)
        resumed = await asyncio.wait_for(
            read_sse(http, url, {"Last-Event-ID": first}, stop_at="event: unrecovered"), WAIT
        )
    assert f"id: {first}" in lines
    assert not any('"n":1' in line for line in lines)  # the stream ended instead
    assert resumed[-1] == "event: unrecovered"


async def test_position_check_catches_up_a_publication_no_gateway_got(
    checking: Gateway, redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    channel = f"chat:check-{uuid.uuid4().hex}"
    watcher = Watcher(channel)
    async with PushgateClient(f"{checking.ws_url}/ws", on_recovery=watcher.on_recovery) as client:
        await watch(client, watcher)
        await client.publish(channel, {"n": 0})
        await until(lambda: len(watcher.got) == 1)
        # Into the history, never published: as if the pub/sub message was lost.
        raw = aioredis.Redis.from_url(redis_server.url)
        silent = (await raw.xadd(history_key(channel), {"d": '{"n":1}'})).decode()
        await raw.aclose()
        caught = await until(lambda: len(watcher.got) == 2, 10 * CHECK_SECONDS + 5)
    report(
        request,
        "a publication in the history that no gateway got (position check every 0.5 s)",
        [
            ("caught up after (s)", round(caught, 3)),
            ("offsets got", [o for _e, o, _n in watcher.got]),
        ],
    )
    assert watcher.got[1][1] == silent
    assert watcher.recoveries == []
