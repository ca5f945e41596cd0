"""``GET /sse``: the same publications as server-sent events, resumable with Last-Event-ID."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.origin import Origin
from tests.stack import Stack


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateways[1].http_url, timeout=20) as client:
        yield client


def read_events(response: httpx.Response, count: int) -> list[dict[str, Any]]:
    """Parse ``count`` events (id, event, data) off an event stream."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in response.iter_lines():
        if not line:
            if "data" in current:
                events.append(current)
                if len(events) == count:
                    return events
            current = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(": ")
            current[field] = json.loads(value) if field == "data" else value
    raise AssertionError(f"stream ended after {len(events)} events")


def publish(stack: Stack, channel: str, data: object) -> str:
    url = f"{stack.gateways[0].http_url}/channels/{channel}/publications"
    response = httpx.post(url, json={"data": data}, timeout=10)
    assert response.status_code == 200
    return str(response.json()["offset"])


def test_job_stream_tells_the_whole_story_then_ends(
    stack: Stack, http: httpx.Client, origin: Origin
) -> None:
    submitted = http.post("/jobs", json={"url": origin.url("/pages/links.html")}).json()
    with http.stream("GET", "/sse", params={"channel": submitted["channel"]}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = read_events(response, 4)
    assert [e["data"]["data"]["type"] for e in events[:3]] == ["queued", "started", "result"]
    assert [e["id"] for e in events[:3]] == [e["data"]["offset"] for e in events[:3]]
    assert events[3]["event"] == "end"


def test_channel_stream_is_live_and_resumes_after_last_event_id(
    stack: Stack, http: httpx.Client
) -> None:
    channel = f"chat:{uuid.uuid4().hex}"
    publish(stack, channel, "old")  # before the stream: not sent to a fresh stream
    with http.stream("GET", "/sse", params={"channel": channel}) as response:
        first = publish(stack, channel, "one")
        (event,) = read_events(response, 1)
    assert event["id"] == first
    assert event["data"]["data"] == "one"
    missed = [publish(stack, channel, n) for n in range(3)]
    headers = {"Last-Event-ID": first}
    with http.stream("GET", "/sse", params={"channel": channel}, headers=headers) as response:
        resumed = read_events(response, 3)
    assert [e["id"] for e in resumed] == missed


def test_resume_from_a_lost_position_says_unrecovered(stack: Stack, http: httpx.Client) -> None:
    channel = f"chat:{uuid.uuid4().hex}"
    publish(stack, channel, "now")
    headers = {"Last-Event-ID": "1-0"}  # older than this channel's history
    with http.stream("GET", "/sse", params={"channel": channel}, headers=headers) as response:
        lines = []
        for line in response.iter_lines():
            lines.append(line)
            if line == "event: unrecovered":
                break
    assert "event: unrecovered" in lines


@pytest.mark.parametrize(
    ("params", "headers", "status", "code"),
    [
        ({}, {}, 422, "invalid_channel"),
        ({"channel": "nonsense"}, {}, 422, "invalid_channel"),
        ({"channel": "nope:x"}, {}, 404, "unknown_channel"),
        ({"channel": "job:missing"}, {}, 404, "unknown_channel"),
        ({"channel": "chat:a"}, {"Last-Event-ID": "yesterday"}, 422, "invalid_last_event_id"),
    ],
)
def test_bad_sse_requests(
    http: httpx.Client, params: dict[str, str], headers: dict[str, str], status: int, code: str
) -> None:
    response = http.get("/sse", params=params, headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
