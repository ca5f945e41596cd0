"""Hostile HTTP on real sockets: malformed framing, slow and huge heads, slow and huge bodies.

Each gets a JSON error the client can read, and the connection is closed (or, after a body read
to its end, kept); the gateway goes on serving everyone else.
"""

from __future__ import annotations

import asyncio
import select
import socket
import time

import httpx
import pytest

from gateway.endpoints.body import DRAIN_BYTES
from gateway.request_head import MAX_HEAD_BYTES
from tests.raw import RawResponse, connect, exchange, read_response
from tests.rpc import rpc
from tests.stack import Gateway, Stack

# The bounded stack's PUSHGATE_HEADER_TIMEOUT and PUSHGATE_BODY_TIMEOUT
BOUND = 1.0
# Generous: the bound plus scheduling on a loaded 2-core machine; a missing bound never ends.
ANSWERED_WITHIN = 10.0
EIGHT_MIB = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def gateway(stack: Stack) -> Gateway:
    return stack.gateways[0]


@pytest.fixture(scope="module", params=[0, 1], ids=["uvicorn app", "uvicorn --factory"])
def bounded(bounded_stack: Stack, request: pytest.FixtureRequest) -> Gateway:
    """Each documented start form: the bounds hold however the gateway was started."""
    gateway: Gateway = bounded_stack.gateways[request.param]
    return gateway


def assert_json_error(
    answer: RawResponse, status: int, code: str, *, ends: tuple[str, ...] = ("eof",)
) -> None:
    """``ends``: how the connection may end after the answer. A clean close, unless the client
    went on sending after the gateway gave up on it: then the kernel answers with a reset."""
    assert answer.status == status, answer
    assert answer.error_code() == code
    assert answer.ended in ends, answer


def assert_serving(gateway: Gateway) -> None:
    assert httpx.get(f"{gateway.http_url}/healthz", timeout=10).status_code == 200


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost x\r\n\r\n",
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
        b"POST /jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
    ],
)
def test_malformed_http_is_a_json_400(gateway: Gateway, data: bytes) -> None:
    """Was: uvicorn's plain-text "Invalid HTTP request received."."""
    assert_json_error(exchange(gateway.port, data), 400, "bad_request")
    assert_serving(gateway)


# Slow heads (slowloris)


def _partial_heads(count: int) -> list[bytes]:
    shapes = [b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"GET /heal", b"POST /jobs HTTP/1.1"]
    return [shapes[n % len(shapes)] for n in range(count)]


def test_slow_heads_get_408_and_are_closed(bounded: Gateway) -> None:
    """Was: 100 sockets with unfinished heads stayed open indefinitely."""
    sockets = [connect(bounded.port) for _ in range(100)]
    drippers, stalled = sockets[:10], sockets[10:]  # drippers send a byte at a time
    started = time.monotonic()
    for sock, head in zip(stalled, _partial_heads(len(stalled)), strict=True):
        sock.sendall(head)
    _drip(drippers, seconds=3 * BOUND)
    assert_serving(bounded)  # everyone else is served meanwhile
    answers = [read_response(sock, started) for sock in sockets]
    for sock in sockets:
        sock.close()
    slowest = max(answer.seconds for answer in answers)
    print(f"100 slow heads: all answered 408 within {slowest:.2f} s (bound {BOUND} s)")
    for answer in answers[: len(drippers)]:
        assert_json_error(answer, 408, "request_timeout", ends=("eof", "reset"))
    for answer in answers[len(drippers) :]:
        assert_json_error(answer, 408, "request_timeout")
    assert slowest < ANSWERED_WITHIN


def _drip(sockets: list[socket.socket], *, seconds: float) -> None:
    """Send one header byte every 0.1 s on each socket until it is answered."""
    dripping = list(sockets)
    for sock in dripping:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
    deadline = time.monotonic() + seconds
    while dripping and time.monotonic() < deadline:
        readable, _, _ = select.select(dripping, [], [], 0.1)
        dripping = [sock for sock in dripping if sock not in readable]
        for sock in dripping:
            sock.sendall(b"a")


def test_a_head_within_the_bound_is_served_and_the_next_is_bounded_again(
    bounded: Gateway,
) -> None:
    with connect(bounded.port) as sock:
        for _ in range(3):  # keep-alive: each request's head is bounded from the last answer
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = read_response(sock, quiet=0.05)
            assert answer.status == 200 and answer.ended == "open"
            sock.settimeout(15)
        assert_json_error(read_response(sock), 408, "request_timeout")


async def test_websockets_outlive_the_head_bound(bounded: Gateway) -> None:
    async with rpc(bounded.ws_url) as client:
        await asyncio.sleep(2.5 * BOUND)
        assert await client.result("ping") == {}


def test_a_huge_head_is_431(bounded: Gateway) -> None:
    """Was: a 64 MiB header was read into memory and served."""
    with connect(bounded.port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent = 0
        while sent < 64 * MAX_HEAD_BYTES and not select.select([sock], [], [], 0.01)[0]:
            sock.sendall(b"a" * 16384)
            sent += 16384
        answer = read_response(sock)
    print(f"a huge head was refused after {sent} bytes (limit {MAX_HEAD_BYTES})")
    assert_json_error(answer, 431, "headers_too_large", ends=("eof", "reset"))
    assert sent < 64 * MAX_HEAD_BYTES
    assert_serving(bounded)


def test_a_slow_body_is_408(bounded: Gateway) -> None:
    head = b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
    answer = exchange(bounded.port, head + b'{"url": ')
    assert_json_error(answer, 408, "request_timeout")
    assert answer.seconds < ANSWERED_WITHIN


# Bodies over the limit, written in one go


@pytest.mark.parametrize(
    ("version", "headers"),
    [
        (b"HTTP/1.1", b"Connection: close\r\n"),  # was: a connection reset while writing
        (b"HTTP/1.0", b""),  # was: the same
        (b"HTTP/1.1", b""),
    ],
    ids=["close", "http/1.0", "keep-alive"],
)
def test_an_8_mib_body_sent_at_once_gets_its_413(
    gateway: Gateway, version: bytes, headers: bytes
) -> None:
    body = b'{"url": "http://a.b/", "pad": "' + b"x" * EIGHT_MIB + b'"}'
    head = b"POST /jobs " + version + b"\r\nHost: x\r\n" + headers
    head += b"Content-Length: %d\r\n\r\n" % len(body)
    with connect(gateway.port) as sock:
        sock.sendall(head + body)  # raises ConnectionResetError if the gateway gave up on it
        answer = read_response(sock)
        assert answer.status == 413 and answer.error_code() == "body_too_large"
        if not headers and version == b"HTTP/1.1":  # the body was read: the connection serves on
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock).status == 200


def test_a_chunked_8_mib_body_gets_its_413(gateway: Gateway) -> None:
    chunk = b"x" * 65536
    chunks = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * (EIGHT_MIB // len(chunk))
    head = b"POST /jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
    with connect(gateway.port) as sock:
        sock.sendall(head + b"\r\n" + chunks + b"0\r\n\r\n")
        assert_json_error(read_response(sock), 413, "body_too_large")


@pytest.mark.parametrize(
    "headers",
    [b"Expect: 100-continue\r\nContent-Length: %d\r\n" % EIGHT_MIB, b"Content-Length: %d\r\n"],
    ids=["expects 100-continue", "over the drain bound"],
)
def test_413_comes_at_once_when_the_body_will_not_be_read(gateway: Gateway, headers: bytes) -> None:
    if b"%d" in headers:
        headers = headers % (DRAIN_BYTES + 1)
    with connect(gateway.port) as sock:
        sock.sendall(b"POST /jobs HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        answer = read_response(sock)  # without sending a byte of the body
    assert answer.status == 413 and answer.error_code() == "body_too_large"
    assert answer.headers["connection"] == "close"
    assert b"100 Continue" not in answer.raw


def test_the_two_documented_answers_that_are_not_json(gateway: Gateway) -> None:
    """README: WebSocket handshakes that never become a socket are refused by uvicorn's
    WebSocket library (invalid handshake) or Starlette's router (no such endpoint)."""
    upgrade = b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    invalid = b"GET /ws HTTP/1.1\r\nHost: x\r\n" + upgrade + b"\r\n"
    answer = exchange(gateway.port, invalid)
    assert answer.status == 400
    assert answer.headers["content-type"].startswith("text/plain")
    key = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    nowhere = b"GET /ws/jobs/ HTTP/1.1\r\nHost: x\r\n" + upgrade + key + b"\r\n"
    answer = exchange(gateway.port, nowhere)
    assert (answer.status, answer.body) == (403, b"")
