"""Metrics scraped from real processes after real work: the counters moved by the right amounts."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from pushgate.cli.processes import free_port
from pushgate.cli.redis_server import RedisServer
from tests.conftest import OPEN_ENV, redis_db
from tests.origin import Origin
from tests.rpc import RawRpc, rpc
from tests.stack import MODULE_WORKER, Stack, submit, wait_until_up
from tests.wsclient import read_all

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    text = httpx.get(url, timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def wait_scrapable(url: str) -> Samples:
    deadline = time.monotonic() + 20
    while True:
        try:
            return scrape(url)
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"{url} never answered"
            time.sleep(0.05)


async def test_worker_metrics_count_a_result_and_a_failure(
    redis_server: RedisServer, origin: Origin
) -> None:
    port = free_port()
    env = {
        **OPEN_ENV,
        "PUSHGATE_ALLOW_PRIVATE_ADDRESSES": "true",
        "PUSHGATE_WORKER_METRICS_PORT": str(port),
        "PUSHGATE_METRICS_HOST": "127.0.0.1",
    }
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    redis_url = redis_db(redis_server, 6)
    with Stack(redis_url, gateways=1, workers=1, env=env, worker_argv=MODULE_WORKER) as stack:
        before = wait_scrapable(metrics_url)
        assert before[("pushgate_worker_jobs_started_total", ())] == 0
        done = submit(stack, origin.url("/pages/links.html"))
        failed = submit(stack, origin.url("/missing"))
        for request_id in (done, failed):
            await read_all(f"{stack.gateways[0].ws_url}/ws/jobs/{request_id}")
        after = scrape(metrics_url)
    assert after[("pushgate_worker_jobs_started_total", ())] == 2
    assert (
        after[("pushgate_worker_jobs_finished_total", (("code", ""), ("outcome", "result")))] == 1
    )
    failed_key = (("code", "http_error"), ("outcome", "failed"))
    assert after[("pushgate_worker_jobs_finished_total", failed_key)] == 1
    assert after[("pushgate_worker_fetch_duration_seconds_count", ())] == 2
    assert after[("pushgate_worker_fetch_bytes_count", ())] == 1  # the 404 raised before a body
    assert after[("pushgate_worker_job_duration_seconds_count", (("outcome", "failed"),))] == 1
    assert ("pushgate_worker_queue_depth", ()) in after


async def test_gateway_metrics_count_requests_jobs_and_sockets(
    stack: Stack, origin: Origin
) -> None:
    gateway = stack.gateways[0]
    metrics_url = f"{gateway.http_url}/metrics"
    route = (("method", "POST"), ("route", "/jobs"), ("status", "202"))
    before = scrape(metrics_url)
    request_id = submit(stack, origin.url("/pages/links.html"))
    await read_all(f"{gateway.ws_url}/ws/jobs/{request_id}")
    httpx.get(f"{gateway.http_url}/no/such/route", timeout=10)
    after = scrape(metrics_url)

    def moved(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        return after.get((name, labels), 0.0) - before.get((name, labels), 0.0)

    assert moved("pushgate_http_requests_total", route) == 1
    unmatched = (("method", "GET"), ("route", "unmatched"), ("status", "404"))
    assert moved("pushgate_http_requests_total", unmatched) == 1
    assert moved("pushgate_http_request_duration_seconds_count", (("route", "/jobs"),)) == 1
    assert moved("pushgate_jobs_submitted_total", (("transport", "http"),)) == 1
    for gauge in ("pushgate_connections", "pushgate_channels", "pushgate_subscriptions"):
        assert (gauge, ()) in after


async def test_gateway_metrics_count_sockets_deliveries_errors_and_resumes(stack: Stack) -> None:
    gateway = stack.gateways[0]
    metrics_url = f"{gateway.http_url}/metrics"
    channel = f"chat:metrics-{uuid.uuid4().hex}"
    before = scrape(metrics_url)
    async with rpc(gateway.ws_url) as one, rpc(gateway.ws_url) as two:
        for client in (one, two):
            await client.result("subscribe", {"channel": channel})
        first = await one.result("publish", {"channel": channel, "data": 1})
        await one.result("publish", {"channel": channel, "data": 2})
        for client in (one, two):
            await client.publications_until(2)
        assert await one.error_code("history", {"channel": "nope:x"}) == -32004
        assert await one.error_code("no.such.method", {}) == -32601
        since = {"epoch": first["epoch"], "offset": first["offset"]}
        await two.result("unsubscribe", {"channel": channel})
        resumed = await two.result("subscribe", {"channel": channel, "since": since})
        assert resumed["recovered"] is True
    after = await settled(metrics_url, before)

    def moved(name: str, *labels: tuple[str, str]) -> float:
        key = (name, tuple(sorted(labels)))
        return after.get(key, 0.0) - before.get(key, 0.0)

    ws = ("transport", "ws_rpc")
    assert moved("pushgate_connections_opened_total", ws) == 2
    assert moved("pushgate_connections_closed_total", ws, ("code", "1000")) == 2
    assert moved("pushgate_messages_received_total", ws) == 8  # 5 frames from one, 3 from two
    assert moved("pushgate_publications_delivered_total") >= 4  # 2 publications x 2 subscribers
    assert moved("pushgate_pubsub_lag_seconds_count") >= 2
    unknown = (("code", "-32004"), ("method", "history"))
    assert moved("pushgate_rpc_errors_total", *unknown) == 1
    assert moved("pushgate_rpc_errors_total", ("code", "-32601"), ("method", "(other)")) == 1
    assert moved("pushgate_resumes_total", ("recovered", "true")) == 1


async def settled(url: str, before: Samples) -> Samples:
    """The metrics once both sockets' closes are counted (the gateway sees them a moment after
    the client)."""
    deadline = time.monotonic() + 10
    key = ("pushgate_connections_closed_total", (("code", "1000"), ("transport", "ws_rpc")))
    while (after := scrape(url)).get(key, 0.0) - before.get(key, 0.0) < 2:
        assert time.monotonic() < deadline, "closes not counted"
        await asyncio.sleep(0.05)
    return after


async def test_a_pubsub_reconnect_is_counted(stack: Stack, redis_server: RedisServer) -> None:
    metrics_url = f"{stack.gateways[0].http_url}/metrics"
    key = ("pushgate_pubsub_reconnects_total", (("shard", "0"),))
    before = scrape(metrics_url).get(key, 0.0)
    killer = redis.Redis.from_url(redis_server.url)
    try:
        killer.client_kill_filter(_type="pubsub")
    finally:
        killer.close()
    deadline = time.monotonic() + 10
    while scrape(metrics_url).get(key, 0.0) < before + 1:
        assert time.monotonic() < deadline, "reconnect not counted"
        await asyncio.sleep(0.05)
    for gateway in stack.gateways:  # the stack is shared: leave it subscribed again
        wait_until_up(gateway.process, gateway.http_url + "/readyz")


SUBSCRIBERS = 3  # per transport
PUBLICATIONS = 5


async def test_messages_sent_count_every_frame_each_client_got(
    stack: Stack, origin: Origin
) -> None:
    """What each client received, counted on its side, is what the gateway counts as sent: on
    /ws every answer and notification, on /ws/jobs every event frame (never the close), on /sse
    every block (the retry preamble, each event)."""
    gateway = stack.gateways[0]
    metrics_url = f"{gateway.http_url}/metrics"
    channel = f"chat:sent-{uuid.uuid4().hex}"
    before = scrape(metrics_url)
    async with AsyncExitStack() as opened:
        sockets = [
            await opened.enter_async_context(rpc(gateway.ws_url)) for _ in range(SUBSCRIBERS)
        ]
        for socket in sockets:
            await socket.result("subscribe", {"channel": channel})
        http = await opened.enter_async_context(
            httpx.AsyncClient(base_url=gateway.http_url, timeout=20)
        )
        streams = []
        for _ in range(SUBSCRIBERS):
            response = await opened.enter_async_context(
                http.stream("GET", "/sse", params={"channel": channel})
            )
            stream = response.aiter_lines()
            assert await next_block(stream) == ["retry: 2000"]  # sent once it is subscribed
            streams.append(stream)
        for n in range(PUBLICATIONS):
            url = f"/channels/{channel}/publications"
            assert (await http.post(url, json={"data": n})).status_code == 200
        rpc_frames = [await frames_until(socket, PUBLICATIONS) for socket in sockets]
        sse_blocks = [1 + len([await next_block(s) for _ in range(PUBLICATIONS)]) for s in streams]
    request_id = submit(stack, origin.url("/pages/links.html"))
    job_url = f"{gateway.ws_url}/ws/jobs/{request_id}"
    transcripts = await asyncio.gather(*(read_all(job_url) for _ in range(SUBSCRIBERS)))
    assert all(t.types == ["queued", "started", "result"] for t in transcripts)
    expected = {
        "ws_rpc": sum(rpc_frames),
        "sse": sum(sse_blocks),
        "ws_jobs": sum(len(t.frames) for t in transcripts),
    }
    assert expected == {
        "ws_rpc": SUBSCRIBERS * (1 + PUBLICATIONS),
        "sse": SUBSCRIBERS * (1 + PUBLICATIONS),
        "ws_jobs": SUBSCRIBERS * 3,
    }
    assert await sent_once_settled(metrics_url, before, expected) == expected


async def frames_until(socket: RawRpc, publications: int) -> int:
    """Frames this socket has received once it has ``publications``: its one answer, those."""
    await socket.publications_until(publications)
    return 1 + len(socket.publications)


async def next_block(lines: AsyncIterator[str]) -> list[str]:
    """The lines of the stream's next block (up to a blank line)."""
    block: list[str] = []
    async with asyncio.timeout(20):
        async for line in lines:
            if not line:
                return block
            block.append(line)
    raise AssertionError(f"stream ended inside a block: {block}")


async def sent_once_settled(
    url: str, before: Samples, expected: dict[str, int]
) -> dict[str, float]:
    """``pushgate_messages_sent_total`` moved per transport, once it reached ``expected`` (an
    SSE block counts when the response has written it, a moment after the client has it) or
    its bounded wait ran out; a count past ``expected`` is returned at once."""
    deadline = time.monotonic() + 10
    while True:
        after = scrape(url)
        moved = {
            transport: after[key] - before.get(key, 0.0)
            for transport in expected
            if (key := ("pushgate_messages_sent_total", (("transport", transport),))) in after
        }
        if moved == expected or any(moved.get(t, 0) > n for t, n in expected.items()):
            return moved
        if time.monotonic() > deadline:
            return moved
        await asyncio.sleep(0.05)
