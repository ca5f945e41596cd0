"""Bad input at every entry point gets a precise 4xx JSON error, and the gateway keeps serving."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from tests.stack import Gateway, Stack
from tests.wsclient import read_until_closed


@pytest.fixture
def gateway(stack: Stack) -> Gateway:
    return stack.gateways[0]


@pytest.fixture
def http(gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.http_url, timeout=10) as client:
        yield client


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def assert_still_serving(http: httpx.Client) -> None:
    assert http.get("/healthz").status_code == 200
    response = http.post("/jobs", json={"url": "http://127.0.0.1:9/ok"})
    assert response.status_code == 202


def unique_id() -> str:
    return f"t-{uuid.uuid4().hex}"


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"{not json", 400, "malformed_json"),
        (b"\xff\xfe\x00garbage", 400, "malformed_json"),
        (b"", 400, "malformed_json"),
        (b"[1, 2]", 422, "invalid_body"),
        (b'"http://example.com"', 422, "invalid_body"),
        (b"{}", 422, "invalid_url"),
        (b'{"url": 5}', 422, "invalid_url"),
        (b'{"url": null}', 422, "invalid_url"),
        (b'{"url": "ftp://example.com/"}', 422, "invalid_url"),
        (b'{"url": "not a url"}', 422, "invalid_url"),
        (b'{"url": "http://example.com", "request_id": ""}', 422, "invalid_request_id"),
        (b'{"url": "http://example.com", "request_id": 7}', 422, "invalid_request_id"),
        (b'{"url": "http://example.com", "request_id": "has space"}', 422, "invalid_request_id"),
    ],
)
def test_post_jobs_rejects_bad_bodies(
    http: httpx.Client, content: bytes, status: int, code: str
) -> None:
    assert_error(http.post("/jobs", content=content), status, code)
    assert_still_serving(http)


def test_oversized_body_is_413_declared_or_streamed(http: httpx.Client) -> None:
    big = b'{"url": "http://example.com/", "pad": "' + b"x" * 70_000 + b'"}'
    assert_error(http.post("/jobs", content=big), 413, "body_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while streaming
        for _ in range(100):
            yield b"x" * 1024

    assert_error(http.post("/jobs", content=chunks()), 413, "body_too_large")
    assert_still_serving(http)


def test_same_id_same_url_is_200_other_url_is_409(http: httpx.Client) -> None:
    request_id = unique_id()
    body: dict[str, Any] = {"url": "http://127.0.0.1:9/a", "request_id": request_id}
    first = http.post("/jobs", json=body)
    assert first.status_code == 202
    assert first.json()["channel"] == f"job:{request_id}"
    assert first.json()["ws_url"] == f"/ws/jobs/{request_id}"
    again = http.post("/jobs", json=body)
    assert again.status_code == 200
    assert again.json()["request_id"] == request_id
    assert_error(http.post("/jobs", json={**body, "url": "http://127.0.0.1:9/b"}), 409, "conflict")
    assert_error(
        http.put(f"/urls/{request_id}", json={"url": "http://127.0.0.1:9/b"}), 409, "conflict"
    )


def test_put_urls_keeps_prototype_semantics(http: httpx.Client) -> None:
    request_id = unique_id()
    created = http.put(f"/urls/{request_id}", json={"url": "http://127.0.0.1:9/p"})
    assert created.status_code == 201
    assert created.json() == {"status": "accepted", "request_id": request_id}
    assert http.put(f"/urls/{request_id}", json={"url": "http://127.0.0.1:9/p"}).status_code == 200
    assert http.get(f"/jobs/{request_id}").json()["url"] == "http://127.0.0.1:9/p"
    assert_error(http.put("/urls/bad%20id", json={"url": "http://x/"}), 422, "invalid_request_id")
    assert_error(http.put(f"/urls/{unique_id()}", content=b"nope"), 400, "malformed_json")
    assert_error(http.put(f"/urls/{unique_id()}", json={"url": "mailto:a@b"}), 422, "invalid_url")


def test_get_job_errors(http: httpx.Client) -> None:
    assert_error(http.get(f"/jobs/{unique_id()}"), 404, "unknown_job")
    assert_error(http.get("/jobs/" + "x" * 129), 422, "invalid_request_id")


def test_unknown_routes_and_methods_are_json(http: httpx.Client) -> None:
    assert_error(http.get("/nowhere"), 404, "not_found")
    assert_error(http.delete("/jobs"), 405, "method_not_allowed")
    assert_error(http.get("/jobs"), 405, "method_not_allowed")


def test_generated_ids_are_unguessable(http: httpx.Client) -> None:
    ids = {
        http.post("/jobs", json={"url": "http://127.0.0.1:9/g"}).json()["request_id"]
        for _ in range(5)
    }
    assert len(ids) == 5
    assert all(len(request_id) >= 22 for request_id in ids)


async def ws_close(url: str) -> tuple[int | None, str]:
    async with websockets.connect(url) as socket:
        with pytest.raises(websockets.ConnectionClosed):
            await socket.recv()
        return socket.close_code, socket.close_reason or ""


async def test_ws_unknown_job_closes_4404(gateway: Gateway) -> None:
    code, reason = await ws_close(f"{gateway.ws_url}/ws/jobs/{unique_id()}")
    assert code == 4404
    assert "unknown job" in reason


@pytest.mark.parametrize("since", ["abc", "1-", "1-2-3", "", "-1-0"])
async def test_ws_bad_since_closes_4400(gateway: Gateway, since: str) -> None:
    code, reason = await ws_close(f"{gateway.ws_url}/ws/jobs/{unique_id()}?since={since}")
    assert code == 4400
    assert "offset" in reason


async def test_ws_bad_request_id_closes_4400(gateway: Gateway) -> None:
    code, _ = await ws_close(f"{gateway.ws_url}/ws/jobs/{'x' * 129}")
    assert code == 4400


async def test_ws_oversized_client_message_closes_1009_and_others_continue(
    gateway: Gateway, http: httpx.Client
) -> None:
    request_id = http.post("/jobs", json={"url": "http://127.0.0.1:9/ws"}).json()["request_id"]
    async with websockets.connect(f"{gateway.ws_url}/ws/jobs/{request_id}") as socket:
        await socket.send("x" * 10_000)
        await read_until_closed(socket)
        assert socket.close_code == 1009
    assert_still_serving(http)
