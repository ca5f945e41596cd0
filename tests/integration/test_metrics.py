"""Metrics scraped from real processes after real work: the counters moved by the right amounts."""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from pushgate.cli.processes import free_port
from pushgate.cli.redis_server import RedisServer
from tests.conftest import OPEN_ENV, redis_db
from tests.origin import Origin
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
