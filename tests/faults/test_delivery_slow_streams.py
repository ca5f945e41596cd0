"""Slow readers of ``/ws/jobs`` and ``/sse``: each gets a gap-free run of events, then the end
(close 4408, or the end of the stream), never events after a hole; resuming with ``since`` /
``Last-Event-ID`` gets exactly the rest."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
import websockets

from pushgate.broker.store import Backend
from pushgate.cli.redis_server import RedisServer
from pushgate.core import events
from tests.faults.gateway_faults import POLICY, gateways, report, tiny_socket

SEND_TIMEOUT = 2.0
EVENTS = 120
PAD = "x" * 50_000  # 6 MB in all: more than the socket buffers between gateway and client
WAIT = 30.0


@pytest.fixture
async def backend(redis_server: RedisServer) -> AsyncIterator[Backend]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield Backend(client, jobs=POLICY)
    await client.aclose()


def contiguous(got: list[str], published: list[str]) -> bool:
    return got == published[: len(got)]


async def test_slow_job_socket_is_closed_4408_after_a_gap_free_run(
    redis_server: RedisServer, backend: Backend, request: pytest.FixtureRequest
) -> None:
    request_id = f"slow-{uuid.uuid4().hex}"
    await backend.create_job(request_id, "http://127.0.0.1:9/", "")
    env = {"PUSHGATE_WS_SEND_TIMEOUT": str(SEND_TIMEOUT)}
    with gateways(redis_server.url, 1, env) as stack:
        gateway = stack.gateways[0]
        url = f"{gateway.ws_url}/ws/jobs/{request_id}"
        sock = tiny_socket(gateway.port)
        async with websockets.connect(url, sock=sock, max_queue=1) as client:
            first = json_offset(await asyncio.wait_for(client.recv(), WAIT))
            published = [first]
            for attempt in range(EVENTS):  # `client` reads nothing meanwhile
                event = events.started(request_id, PAD, attempt + 1)
                offset = await backend.publish_job_event(request_id, event)
                assert offset is not None  # the job has no terminal event yet
                published.append(offset)
            await asyncio.sleep(SEND_TIMEOUT + 2.0)
            got = [first]
            with contextlib.suppress(websockets.ConnectionClosed):
                async with asyncio.timeout(WAIT):
                    async for frame in client:
                        got.append(json_offset(frame))
        code = client.close_code
        async with websockets.connect(f"{url}?since={got[-1]}") as again:
            rest = [json_offset(await asyncio.wait_for(again.recv(), WAIT))
                    for _ in range(len(published) - len(got))]  # fmt: skip
    report(
        request,
        "slow /ws/jobs reader (4 KiB receive buffer, 120 events of 50 KB)",
        [
            ("close code", code),
            ("events got before the close, gap-free", (len(got), contiguous(got, published))),
            ("resumed with since: the rest", len(rest) == len(published) - len(got)),
        ],
    )
    assert code == 4408
    assert 1 < len(got) < len(published)
    assert contiguous(got, published)
    assert got + rest == published


def json_offset(frame: str | bytes) -> str:
    match = re.search(r'"offset":"([0-9]+-[0-9]+)"', frame if isinstance(frame, str) else "")
    assert match is not None, frame[:200]
    return match[1]


def sse_ids(body: bytes) -> list[str]:
    return re.findall(r"^id: (\S+)\r?$", body.decode(errors="replace"), re.M)


async def read_sse(
    sock: socket.socket,
    path: str,
    *,
    last_id: str | None = None,
    stall: float = 0.0,
    count: int | None = None,
) -> list[str]:
    """Request the stream, read nothing for ``stall`` seconds, then read until it ends (or has
    ``count`` events); returns every event's ``id``."""
    reader, writer = await asyncio.open_connection(sock=sock)
    headers = f"Last-Event-ID: {last_id}\r\n" if last_id else ""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode())
    await asyncio.sleep(stall)
    data = b""
    async with asyncio.timeout(WAIT):
        # A chunked body ends with a chunk of size 0.
        while not data.endswith(b"\r\n0\r\n\r\n"):
            if count is not None and len(sse_ids(data)) >= count:
                break
            chunk = await reader.read(65536)
            if not chunk:
                break
            data += chunk
    writer.close()
    return sse_ids(data)


async def test_slow_sse_reader_gets_a_gap_free_run_then_the_end(
    redis_server: RedisServer, backend: Backend, request: pytest.FixtureRequest
) -> None:
    channel = f"chat:slowsse-{uuid.uuid4().hex}"
    env = {"PUSHGATE_WS_QUEUE_SIZE": "8"}
    with gateways(redis_server.url, 1, env) as stack:
        gateway = stack.gateways[0]
        path = f"/sse?channel={channel}"
        reading = asyncio.create_task(read_sse(tiny_socket(gateway.port), path, stall=8.0))
        await asyncio.sleep(0.5)  # subscribed
        published = [(await backend.publish(channel, {"pad": PAD}, POLICY))[0]
                     for _ in range(EVENTS)]  # fmt: skip
        got = await reading
        left = len(published) - len(got)
        rest = await read_sse(tiny_socket(gateway.port), path, last_id=got[-1], count=left)
    report(
        request,
        "slow /sse reader (4 KiB receive buffer, queue of 8, 120 events of 50 KB)",
        [
            ("events got before the stream ended, gap-free",
             (len(got), contiguous(got, published))),
            ("resumed with Last-Event-ID: the rest", rest == published[len(got) :]),
        ],
    )  # fmt: skip
    assert 0 < len(got) < len(published)
    assert contiguous(got, published)
    assert rest == published[len(got) :]
