"""Metrics scraped from real processes after real work: the counters moved by the right amounts."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from pushgate.cli.processes import free_port
from pushgate.cli.redis_server import RedisServer
from tests.conftest import OPEN_ENV, redis_db
from tests.origin import Origin
from tests.rpc import rpc
from tests.stack import MODULE_WORKER, Stack, submit
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
