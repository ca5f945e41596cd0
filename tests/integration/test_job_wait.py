"""``/ws/jobs`` opened before its job: it waits, streams the job once it is submitted, gives up
with 4404, never more sockets wait than the cap, and with auth on none waits without a token."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator

import httpx
import jwt
import pytest
import websockets

from tests.conftest import JWT_SECRET
from tests.origin import Origin
from tests.stack import Gateway, Stack
from tests.wsclient import Transcript, read_until_closed

ATTEMPTS = 20


@pytest.fixture(scope="module")
def one_waiter(stack: Stack) -> Iterator[Gateway]:
    """A gateway where one socket at a time may wait, for up to 20 s."""
    env = {"PUSHGATE_JOB_WAIT_SECONDS": "20", "PUSHGATE_JOB_WAIT_MAX_SOCKETS": "1"}
    started = stack.start_gateway(env)
    try:
        yield started
    finally:
        stack.stop_gateway(started)


def new_id() -> str:
    return f"wait-{uuid.uuid4().hex}"


def put_url(gateway: Gateway, request_id: str, url: str) -> None:
    body = {"url": url}
    response = httpx.put(f"{gateway.http_url}/urls/{request_id}", json=body, timeout=10)
    assert response.status_code == 201, response.text


async def waiter_of_two(gateway: Gateway) -> tuple[str, websockets.ClientConnection]:
    """Open two sockets for two unknown jobs at once: with one slot, exactly one waits and the
    other is told 4404 at once, whichever came first. Returns the waiter and its job."""
    ids = [new_id(), new_id()]
    sockets = [await websockets.connect(f"{gateway.ws_url}/ws/jobs/{i}") for i in ids]
    reads = [asyncio.create_task(read_until_closed(s)) for s in sockets]
    done, _pending = await asyncio.wait(reads, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    assert len(done) == 1, "neither socket was refused: more than one waits"
    refused = reads.index(done.pop())
    transcript = reads[refused].result()
    assert (transcript.close_code, transcript.close_reason) == (4404, f"unknown job {ids[refused]}")
    waiting = 1 - refused
    reads[waiting].cancel()  # websockets' recv may be cancelled without losing a message
    with contextlib.suppress(asyncio.CancelledError):
        await reads[waiting]
    return ids[waiting], sockets[waiting]


async def test_a_socket_opened_first_streams_the_job_once_it_is_submitted(
    one_waiter: Gateway, origin: Origin
) -> None:
    request_id, socket = await waiter_of_two(one_waiter)
    async with socket:
        put_url(one_waiter, request_id, origin.url("/pages/links.html"))
        transcript = await read_until_closed(socket)
    assert transcript.types == ["queued", "started", "result"]
    assert transcript.close_code == 1000
    # The slot is free again once that job arrived: another socket can wait.
    _second_id, second = await waiter_of_two(one_waiter)
    await second.close()


async def test_a_socket_that_leaves_while_waiting_frees_its_slot(one_waiter: Gateway) -> None:
    _request_id, socket = await waiter_of_two(one_waiter)
    await socket.close()
    for attempt in range(ATTEMPTS):  # the gateway sees the close on its next read
        try:
            _other, waiting = await waiter_of_two(one_waiter)
        except AssertionError:
            await asyncio.sleep(0.1)
            continue
        await waiting.close()
        print(f"a slot was free again after {attempt} retries")
        return
    raise AssertionError("the slot of a socket that left was never freed")


async def test_a_job_never_submitted_closes_4404_after_the_wait(stack: Stack) -> None:
    request_id = new_id()  # PUSHGATE_JOB_WAIT_SECONDS=1 in the test stack
    started = time.monotonic()
    async with websockets.connect(f"{stack.gateways[0].ws_url}/ws/jobs/{request_id}") as socket:
        transcript: Transcript = await read_until_closed(socket)
    waited = time.monotonic() - started
    print(f"unknown job: 4404 after {waited:.2f} s of waiting (PUSHGATE_JOB_WAIT_SECONDS=1)")
    assert (transcript.close_code, transcript.close_reason) == (4404, f"unknown job {request_id}")
    assert waited >= 0.9  # it did wait, rather than answer at once


def subscribe_token(channel: str) -> str:
    claims = {"aud": "pushgate:subscribe", "channel": channel, "exp": int(time.time()) + 60}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, "a subscribe token (?token=) is needed"),
        ("forged", "invalid subscribe token"),
        ("another job's", "the token does not open"),
    ],
)
async def test_with_auth_on_no_socket_waits_without_the_jobs_token(
    auth_stack: Stack, token: str | None, reason: str
) -> None:
    if token == "another job's":
        token = subscribe_token("job:another-job")  # made now: it expires in a minute
    # The auth stack waits 30 s for unknown jobs: a 4401 within the read's bound is no wait.
    url = f"{auth_stack.gateways[0].ws_url}/ws/jobs/{new_id()}"
    async with websockets.connect(url if token is None else f"{url}?token={token}") as socket:
        transcript = await read_until_closed(socket, timeout=10)
    assert transcript.close_code == 4401
    assert reason in transcript.close_reason
