"""End to end: submit over HTTP, scrape in a worker, receive every event over WebSocket."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.origin import Origin, expected_links
from tests.stack import Stack, submit
from tests.wsclient import Transcript, read_all

TERMINAL_WAIT = 30.0


async def watch(stack: Stack, request_id: str, gateway: int = 0, since: str = "") -> Transcript:
    query = f"?since={since}" if since else ""
    return await read_all(f"{stack.gateways[gateway].ws_url}/ws/jobs/{request_id}{query}")


def job_state(stack: Stack, request_id: str) -> dict[str, Any]:
    response = httpx.get(f"{stack.gateways[0].http_url}/jobs/{request_id}", timeout=10)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def assert_one_run(transcript: Transcript, terminal: str) -> None:
    assert transcript.types == ["queued", "started", terminal]
    assert transcript.close_code == 1000
    offsets = [tuple(map(int, o.split("-"))) for o in transcript.offsets]
    assert offsets == sorted(set(offsets))


@pytest.mark.parametrize("page", ["links", "base"])
async def test_result_has_exactly_the_expected_links(
    stack: Stack, origin: Origin, page: str
) -> None:
    url = origin.url(f"/pages/{page}.html")
    request_id = submit(stack, url)
    transcript = await watch(stack, request_id)
    assert_one_run(transcript, "result")
    result = transcript.event("result")
    assert result["request_id"] == request_id
    assert result["url"] == url
    assert result["final_url"] == url
    assert result["status_code"] == 200
    assert result["links"] == expected_links(origin, page)
    assert isinstance(result["title"], str) and result["title"]
    assert isinstance(result["elapsed_ms"], int) and result["elapsed_ms"] >= 0
    assert result["links_truncated"] is False
    state = job_state(stack, request_id)
    assert state["status"] == "done"
    assert state["result"]["links"] == result["links"]


async def test_late_subscriber_gets_full_history_and_since_resumes(
    stack: Stack, origin: Origin
) -> None:
    request_id = submit(stack, origin.url("/pages/links.html"))
    first = await watch(stack, request_id)
    assert_one_run(first, "result")
    late = await watch(stack, request_id, gateway=1)  # after the result, on the other replica
    assert late.frames == first.frames
    resumed = await watch(stack, request_id, since=first.offsets[0])
    assert resumed.frames == first.frames[1:]
    assert resumed.close_code == 1000
    past_the_end = await watch(stack, request_id, since=first.offsets[-1])
    assert past_the_end.frames == []
    assert past_the_end.close_code == 1000


async def test_job_on_gateway_a_reaches_clients_on_a_and_b_exactly_once(
    stack: Stack, origin: Origin
) -> None:
    # Subscribed before the job runs: a slow page keeps it running while both clients join.
    request_id = submit(stack, origin.url("/flaky?key=" + uuid.uuid4().hex + "&fail=1"))
    watchers = [asyncio.create_task(watch(stack, request_id, gateway=g)) for g in (0, 1, 0, 1)]
    transcripts = await asyncio.gather(*watchers)
    for transcript in transcripts:
        assert_one_run(transcript, "result")
        assert transcript.frames == transcripts[0].frames


async def test_many_jobs_across_replicas_each_delivered_once(stack: Stack, origin: Origin) -> None:
    ids = [submit(stack, origin.url("/pages/links.html"), gateway=n % 2) for n in range(20)]
    transcripts = await asyncio.gather(
        *(watch(stack, rid, gateway=(n + 1) % 2) for n, rid in enumerate(ids))
    )
    for request_id, transcript in zip(ids, transcripts, strict=True):
        assert_one_run(transcript, "result")
        assert {frame["channel"] for frame in transcript.frames} == {f"job:{request_id}"}


FAILURES = [
    ("/drip", "timeout"),
    ("/huge", "too_large"),
    ("/huge-declared", "too_large"),
    ("/gzip-bomb", "too_large"),
    ("/redirect-loop", "too_many_redirects"),
    ("/image.png", "not_html"),
    ("/missing", "http_error"),
    ("/error", "http_error"),
]


@pytest.mark.parametrize(("path", "code"), FAILURES)
async def test_failures_are_published_with_their_code(
    stack: Stack, origin: Origin, path: str, code: str
) -> None:
    request_id = submit(stack, origin.url(path))
    transcript = await watch(stack, request_id)
    assert_one_run(transcript, "failed")
    failure = transcript.event("failed")
    assert failure["request_id"] == request_id
    assert failure["error"]["code"] == code
    assert failure["error"]["message"]
    state = job_state(stack, request_id)
    assert state["status"] == "failed"
    assert state["error"] == failure["error"]


async def test_connect_and_dns_failures(stack: Stack, origin: Origin) -> None:
    closed = origin.closed_port_url()
    unresolvable = "http://no-such-host.invalid/"
    transcripts = await asyncio.gather(
        watch(stack, submit(stack, closed)), watch(stack, submit(stack, unresolvable))
    )
    assert [t.event("failed")["error"]["code"] for t in transcripts] == [
        "connect_error",
        "dns_error",
    ]


async def test_transient_500_is_retried_then_succeeds(stack: Stack, origin: Origin) -> None:
    key = uuid.uuid4().hex
    transcript = await watch(stack, submit(stack, origin.url(f"/flaky?key={key}&fail=2")))
    assert_one_run(transcript, "result")
    assert origin.hits(f"/flaky?key={key}") == 3


async def test_loopback_is_refused_when_private_addresses_are_not_allowed(
    guarded_stack: Stack, origin: Origin
) -> None:
    request_id = submit(guarded_stack, origin.url("/pages/links.html"))
    transcript = await watch(guarded_stack, request_id)
    assert_one_run(transcript, "failed")
    assert transcript.event("failed")["error"]["code"] == "blocked_address"


async def test_heavy_pages_at_once_all_end_with_a_capped_result(
    stack: Stack, origin: Origin
) -> None:
    """12 pages of ~4.8 MB and 180,000 links each, submitted together: one heavy page cannot
    starve the others, and each ends with its first 10,000 links and ``links_truncated``."""
    url = origin.url("/many-links?count=180000")
    request_ids = [submit(stack, f"{url}&n={n}") for n in range(12)]
    transcripts = await asyncio.gather(*(watch(stack, rid) for rid in request_ids))
    for transcript in transcripts:
        assert_one_run(transcript, "result")
        result = transcript.event("result")
        assert len(result["links"]) == 10_000
        assert result["links_truncated"] is True
    elapsed = sorted(t.event("result")["elapsed_ms"] for t in transcripts)
    print(f"heavy pages: elapsed_ms min {elapsed[0]}, max {elapsed[-1]}")
