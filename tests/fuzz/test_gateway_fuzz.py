"""Fuzzing a live gateway: every HTTP body and every JSON-RPC method's params, and garbage.

Whatever is sent: no 5xx, no socket dropped without a close code, every error code and close
code one of the table's (``ErrorKind``, ``RpcCode``, ``CloseCode``), and the canary subscriber
on the same gateway loses nothing meanwhile (checked last).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given, reject
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from pushgate.core.errors import CloseCode, ErrorKind, RpcCode
from tests.fuzz import strategies as fz
from tests.fuzz.canary import Canary
from tests.fuzz.conftest import CANARY_CHANNEL, FUZZ_API_KEY, FUZZ_SECRET, fuzz_token
from tests.raw import exchange
from tests.stack import Gateway

pytestmark = pytest.mark.usefixtures("canary")

KINDS = {kind.code: kind for kind in ErrorKind}
RPC_CODES = {int(code) for code in RpcCode}
CLOSE_CODES = {int(code) for code in CloseCode}
RECV_TIMEOUT = 20.0
# websockets draws its keepalive pings' payload from the global random generator, which
# Hypothesis checks is left alone while it draws examples; the gateway pings us anyway.
NO_KEEPALIVE: dict[str, Any] = {"open_timeout": RECV_TIMEOUT, "ping_interval": None}
BEARER = {b"Authorization": f"Bearer {fuzz_token()}".encode()}
Headers = dict[bytes, bytes]


@pytest.fixture(scope="module")
def http(fuzzed: Gateway) -> Iterator[httpx.Client]:
    with fuzzed.http_client() as client:
        yield client


def check_http(response: httpx.Response) -> None:
    """No 5xx; an error is the JSON of a row of the table, with that row's status."""
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code < 400 or response.request.method == "HEAD":
        return
    error = response.json()["error"]
    assert KINDS[error["code"]].http_status == response.status_code, error
    assert isinstance(error["message"], str)


def send(http: httpx.Client, method: str, path: str, **options: Any) -> None:
    try:
        response = http.request(method, path, **options)
    except httpx.LocalProtocolError:
        reject()  # httpx itself refused to send it: nothing reached the gateway
    check_http(response)


def credentials(valid: bool, garbage: bytes) -> Headers:
    return {**BEARER} if valid else {b"Authorization": b"Bearer " + garbage}


bodies = st.one_of(
    fz.object_text({"url": fz.either(fz.urls), "request_id": fz.either(fz.request_ids)}),
    fz.value_texts,
).map(str.encode) | st.binary(max_size=80)


# HTTP


@fz.fuzz_settings(300)
@given(body=bodies, valid=st.booleans(), garbage=fz.header_values, kind=fz.header_values)
def test_post_jobs(
    http: httpx.Client, body: bytes, valid: bool, garbage: bytes, kind: bytes
) -> None:
    headers = {**credentials(valid, garbage), b"Content-Type": kind}
    send(http, "POST", "/jobs", content=body, headers=headers)


@fz.fuzz_settings(100)
@given(request_id=fz.path_segments, body=bodies, valid=st.booleans(), garbage=fz.header_values)
def test_put_urls(
    http: httpx.Client, request_id: str, body: bytes, valid: bool, garbage: bytes
) -> None:
    send(http, "PUT", f"/urls/{request_id}", content=body, headers=credentials(valid, garbage))


@fz.fuzz_settings(100)
@given(request_id=fz.path_segments, token=fz.tokens(FUZZ_SECRET), valid=st.booleans())
def test_get_jobs(http: httpx.Client, request_id: str, token: str, valid: bool) -> None:
    headers: Headers = BEARER if valid else {}
    send(http, "GET", f"/jobs/{request_id}", params={"token": token}, headers=headers)


@fz.fuzz_settings(300)
@given(
    channel=fz.channels.map(lambda name: quote(name, safe=":")),
    body=fz.object_text({"data": fz.value_texts}).map(str.encode) | bodies,
    key=st.sampled_from([FUZZ_API_KEY.encode()]) | fz.header_values,
    idempotency=st.none() | fz.header_values,
)
def test_publish_api(
    http: httpx.Client, channel: str, body: bytes, key: bytes, idempotency: bytes | None
) -> None:
    headers = {b"X-API-Key": key}
    if idempotency is not None:
        headers[b"Idempotency-Key"] = idempotency
    send(http, "POST", f"/channels/{channel}/publications", content=body, headers=headers)


@fz.fuzz_settings(150)
@given(
    channel=fz.channels,
    last_event_id=st.none() | fz.offsets.map(str.encode) | fz.header_values,
    origin=st.none() | fz.header_values,
    valid=st.booleans(),
    token=st.none() | fz.tokens(FUZZ_SECRET),
)
def test_sse(
    http: httpx.Client,
    channel: str,
    last_event_id: bytes | None,
    origin: bytes | None,
    valid: bool,
    token: str | None,
) -> None:
    headers: Headers = {**BEARER} if valid else {}
    for name, value in ((b"Last-Event-ID", last_event_id), (b"Origin", origin)):
        if value is not None:
            headers[name] = value
    params = {"channel": channel, **({"token": token} if token is not None else {})}
    with http.stream("GET", "/sse", params=params, headers=headers) as response:
        if response.status_code == 200:  # a live stream: its first event is enough
            assert next(response.iter_lines()) == "retry: 2000"
            return
        response.read()
    check_http(response)


@fz.fuzz_settings(150)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
    path=st.lists(fz.path_segments, max_size=3).map(lambda parts: "/" + "/".join(parts)),
    body=bodies,
)
def test_any_route(http: httpx.Client, method: str, path: str, body: bytes) -> None:
    if path.startswith("/sse"):
        reject()  # a live stream when it succeeds: test_sse covers it
    send(http, method, path, content=body)


_HEADER_NAMES = [b"Host", b"Accept", b"Authorization", b"X-API-Key", b"Origin", b"Cookie", b"X-A"]


@fz.fuzz_settings(150)
@given(
    method=st.sampled_from([b"GET", b"POST", b"PUT", b"BREW", b"G\x00T", b""]),
    target=st.binary(max_size=30).filter(lambda target: not target.startswith(b"/sse")),
    version=st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2", b"HTTP/9.9", b"HTTX", b""]),
    headers=st.lists(
        st.tuples(st.sampled_from(_HEADER_NAMES) | st.binary(max_size=8), st.binary(max_size=20)),
        max_size=4,
    ),
)
def test_raw_request_heads(
    fuzzed: Gateway,
    method: bytes,
    target: bytes,
    version: bytes,
    headers: list[tuple[bytes, bytes]],
) -> None:
    """Whatever bytes make up a head (no body, so nothing waits for one): a JSON answer."""
    lines = [method + b" " + target + b" " + version]
    lines += [name + b": " + value for name, value in headers]
    lines.append(b"Connection: close")
    answer = exchange(fuzzed.port, b"\r\n".join(lines) + b"\r\n\r\n", timeout=10)
    assert answer.ended != "reset", answer
    assert 100 <= answer.status < 500, answer
    if answer.status >= 400 and method != b"HEAD":
        assert KINDS[answer.error_code()].http_status == answer.status, answer


# WebSocket: JSON-RPC


class FuzzSocket:
    """A connected ``/ws`` client that fuzz frames go through; reopened after a close."""

    def __init__(self, ws_url: str) -> None:
        self._url = f"{ws_url}/ws"
        self._socket: ClientConnection | None = None
        self._sockets = contextlib.ExitStack()

    def _open(self) -> ClientConnection:
        if self._socket is None:
            opened = connect(self._url, max_size=None, **NO_KEEPALIVE)
            self._socket = self._sockets.enter_context(opened)
            connected = answers_to(self._socket, json.dumps(_request("connect", fuzz_token())))
            assert "result" in connected[0], connected
        return self._socket

    def exchange(self, frame: str) -> list[dict[str, Any]]:
        """Send ``frame``; return what answered it (nothing for a notification)."""
        socket = self._open()
        try:
            return answers_to(socket, frame)
        except ConnectionClosed as exc:
            self._socket = None
            assert_closed_with_a_code(exc)
            return []

    def close(self) -> None:
        self._sockets.close()


def answers_to(socket: ClientConnection, frame: str) -> list[dict[str, Any]]:
    """Send ``frame``, then a ping with a fresh id: the gateway answers in order, so every
    answer before the ping's answers ``frame``. Each answer is checked against the table."""
    socket.send(frame)
    sentinel = f"sentinel-{uuid.uuid4().hex}"
    socket.send(json.dumps(_request("ping", None, sentinel)))
    answers: list[dict[str, Any]] = []
    while True:
        message = json.loads(socket.recv(timeout=RECV_TIMEOUT))
        if message.get("method") == "publication":
            continue
        check_rpc_answer(message)
        if message.get("id") == sentinel:
            return answers
        answers.append(message)


def _request(method: str, token: str | None, request_id: str | int = 0) -> dict[str, Any]:
    params = {"token": token} if token is not None else {}
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def check_rpc_answer(message: dict[str, Any]) -> None:
    assert message.get("jsonrpc") == "2.0", message
    assert ("result" in message) != ("error" in message), message
    if "error" in message:
        assert message["error"]["code"] in RPC_CODES, message
        assert isinstance(message["error"]["message"], str), message


def assert_closed_with_a_code(exc: ConnectionClosed) -> None:
    """A close frame with a documented code came: the socket was not just dropped (1006)."""
    assert exc.rcvd is not None, exc
    assert exc.rcvd.code in CLOSE_CODES, exc


@pytest.fixture(scope="module")
def ws(fuzzed: Gateway) -> Iterator[FuzzSocket]:
    socket = FuzzSocket(fuzzed.ws_url)
    yield socket
    socket.close()


PARAMS = fz.rpc_params(FUZZ_SECRET)


@pytest.mark.parametrize("method", sorted(set(PARAMS) - {"connect"}))
@fz.fuzz_settings(150)
@given(data=st.data())
def test_each_method(ws: FuzzSocket, method: str, data: st.DataObject) -> None:
    ws.exchange(data.draw(fz.frames(PARAMS[method], st.just(json.dumps(method)))))


@fz.fuzz_settings(300)
@given(frame=fz.garbage_frames)
def test_garbage_frames(ws: FuzzSocket, frame: str) -> None:
    ws.exchange(frame)


@fz.fuzz_settings(100)
@given(frame=fz.frames(PARAMS["connect"], st.just('"connect"') | fz.methods.map(json.dumps)))
def test_connect_on_fresh_sockets(fuzzed: Gateway, frame: str) -> None:
    """Authentication comes first: each frame is a new socket's first."""
    with connect(f"{fuzzed.ws_url}/ws", **NO_KEEPALIVE) as socket:
        try:
            answers_to(socket, frame)
        except ConnectionClosed as exc:  # a refused connect: answered, then closed with 4401
            assert_closed_with_a_code(exc)


@fz.fuzz_settings(100)
@given(request_id=fz.path_segments, since=st.none() | fz.offsets, token=st.none() | st.text())
def test_job_socket_urls(
    fuzzed: Gateway, request_id: str, since: str | None, token: str | None
) -> None:
    query = httpx.QueryParams({k: v for k, v in (("since", since), ("token", token)) if v})
    url = f"{fuzzed.ws_url}/ws/jobs/{request_id}?{query}"
    refused = None
    try:
        with connect(url, **NO_KEEPALIVE) as socket, contextlib.suppress(TimeoutError):
            socket.recv(timeout=RECV_TIMEOUT)
    except InvalidStatus as exc:  # no such route (an empty or a split id): refused, no socket
        refused = exc.response.status_code
    except ConnectionClosed as exc:
        assert_closed_with_a_code(exc)
    assert refused in (None, 403)


# Last: the canary lost nothing while all of the above ran


def test_the_canary_lost_nothing(fuzzed: Gateway, canary: Canary, http: httpx.Client) -> None:
    report = canary.stop()
    print(
        f"canary on {CANARY_CHANNEL}: {len(report.published)} published, "
        f"{len(report.received)} received, {len(report.lost)} lost"
    )
    assert report.error is None
    assert len(report.published) > 100
    assert report.received == report.published  # every one, once, in order
    assert fuzzed.process.poll() is None
    assert http.get("/readyz").status_code == 200
