"""A client that stops reading, among 200 subscribers: it is closed with 4408 once a send stalls
for the send timeout, nothing reaches it after the first publication it missed, the 199 others
get everything, and its resume with ``since`` replays exactly what it missed."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from contextlib import AsyncExitStack
from typing import Any

import pytest
import websockets

from pushgate.cli.redis_server import RedisServer
from tests.faults.gateway_faults import (
    Acked,
    Publisher,
    gateways,
    key,
    report,
    tiny_socket,
    until,
)
from tests.rpc import RawRpc, rpc

SEND_TIMEOUT = 2.0
READERS = 199
# Long enough for the slow client's TCP buffers to fill at 500 KB/s (a few MB) and for a send
# to stall for SEND_TIMEOUT after that; below uvicorn's 20 s ping timeout.
STALL = 12.0
BULK_BYTES = 50_000
CLOSE_TIMEOUT = 10.0  # uvicorn's: how long a close waits for the client's answer


def got_offsets(client: RawRpc, channel: str) -> list[str]:
    return [p["offset"] for p in client.publications if p["channel"] == channel]


def last_position(client: RawRpc, channel: str) -> dict[str, str]:
    """Where ``client`` resumes ``channel`` from (the channels start empty)."""
    got = [p for p in client.publications if p["channel"] == channel]
    return (
        {"epoch": got[-1]["epoch"], "offset": got[-1]["offset"]}
        if got
        else {"epoch": "", "offset": ""}
    )


def after_last(client: RawRpc, channel: str, acked: list[Acked]) -> list[Acked]:
    """What a resume from ``client``'s last publication of ``channel`` should replay."""
    got = got_offsets(client, channel)
    return [a for a in acked if not got or key(a.offset) > key(got[-1])]


async def publications_within(client: RawRpc, count: int, seconds: float) -> list[dict[str, Any]]:
    try:
        async with asyncio.timeout(seconds):
            return await client.publications_until(count)
    except TimeoutError:
        return client.publications


def silent_gap(got: list[str], acked: list[Acked]) -> int:
    """Publications acknowledged before the newest one ``got`` has that it never got."""
    if not got:
        return 0
    newest = key(got[-1])
    seen = set(got)
    return sum(1 for a in acked if key(a.offset) < newest and a.offset not in seen)


async def read_for(client: RawRpc, seconds: float) -> tuple[int | None, str]:
    """Read until the server closes, or ``seconds`` pass (None: it never closed)."""
    try:
        async with asyncio.timeout(seconds):
            return await client.closed()
    except TimeoutError:
        return None, ""


async def keep_reading(client: RawRpc) -> None:
    while True:
        message = await client.recv()
        if message.get("method") == "publication":
            client.publications.append(message["params"])


async def test_slow_consumer_is_closed_4408_and_resumes_exactly(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    fan, bulk = f"chat:fan-{uuid.uuid4().hex}", f"chat:bulk-{uuid.uuid4().hex}"
    env = {"PUSHGATE_WS_SEND_TIMEOUT": str(SEND_TIMEOUT)}
    with gateways(redis_server.url, 1, env) as stack:
        url = stack.gateways[0].ws_url
        async with AsyncExitStack() as sockets:
            slow = await sockets.enter_async_context(rpc(url, receive_buffer=4096))
            for channel in (fan, bulk):
                await slow.result("subscribe", {"channel": channel})
            # Never reads again, nor pings: once the close has waited for it for uvicorn's
            # close timeout, only the gateway can end this connection.
            stuck = RawRpc(
                await sockets.enter_async_context(
                    websockets.connect(
                        f"{url}/ws", sock=tiny_socket(stack.gateways[0].port), max_queue=1,
                        ping_interval=None,
                    )
                )
            )  # fmt: skip
            await stuck.result("subscribe", {"channel": bulk})
            readers = [await sockets.enter_async_context(rpc(url)) for _ in range(READERS)]
            for reader in readers:
                await reader.result("subscribe", {"channel": fan})
            reading = [asyncio.create_task(keep_reading(r)) for r in readers]
            publisher = Publisher(redis_server.url, [fan, bulk], rate=20, pad={bulk: BULK_BYTES})
            stalled_at = time.monotonic()  # `slow` reads nothing from here on
            publisher.start()
            await asyncio.sleep(STALL)
            code, reason = await read_for(slow, 20.0)
            seen_at = time.monotonic()
            await publisher.stop()
            # Until the newest acknowledged publication reached every reader (bounded: the
            # assertion below then names the readers it did not reach).
            newest = publisher.of(fan)[-1].offset
            with contextlib.suppress(TimeoutError):
                await until(lambda: all(newest in got_offsets(r, fan) for r in readers), 10.0)
            for task in reading:
                task.cancel()
            await asyncio.gather(*reading, return_exceptions=True)
            stuck_deadline = stalled_at + STALL + SEND_TIMEOUT + CLOSE_TIMEOUT + 2.0
            await asyncio.sleep(max(0.0, stuck_deadline - time.monotonic()))
            stuck_code, _ = await read_for(stuck, 5.0)

        fan_acked, bulk_acked = publisher.of(fan), publisher.of(bulk)
        short = [r for r in readers if got_offsets(r, fan) != [a.offset for a in fan_acked]]
        gaps = {c: silent_gap(got_offsets(slow, c), publisher.of(c)) for c in (fan, bulk)}
        slow_bulk = got_offsets(slow, bulk)
        first_missed = next((a for a in bulk_acked if a.offset not in set(slow_bulk)), None)

        # The resume: from the last publication it got on each channel.
        async with rpc(url) as again:
            resumed = {}
            for channel in (fan, bulk):
                resumed[channel] = await again.result(
                    "subscribe", {"channel": channel, "since": last_position(slow, channel)}
                )
            missed = [a for c in (fan, bulk) for a in after_last(slow, c, publisher.of(c))]
            replay = await publications_within(again, len(missed), 10.0)

    report(
        request,
        "slow consumer among 200 subscribers (4 KiB receive buffer, 50 KB at 10/s)",
        [
            ("send timeout (s)", SEND_TIMEOUT),
            ("slow client's close code", code),
            ("never-reading client, after send + close timeouts", stuck_code),
            ("close reason", reason),
            ("publications it got before the close (fan, bulk)",
             (len(got_offsets(slow, fan)), len(slow_bulk))),
            ("first missed bulk publication, s after it stopped reading",
             round(first_missed.at - stalled_at, 2) if first_missed else None),
            ("close seen after resuming reading at (s)", round(seen_at - stalled_at, 2)),
            ("silent gaps (missed, yet later ones got) fan, bulk", (gaps[fan], gaps[bulk])),
            ("readers that missed any of the fan channel", f"{len(short)} of {READERS}"),
            ("resume recovered (fan, bulk)",
             (resumed[fan].get("recovered"), resumed[bulk].get("recovered"))),
            ("missed, then replayed on resume", (len(missed), len(replay))),
        ],
    )  # fmt: skip
    assert code == 4408
    assert stuck_code == 1006  # reset: no close frame could reach it
    assert gaps == {fan: 0, bulk: 0}
    assert short == []
    assert all(resumed[c]["recovered"] is True for c in (fan, bulk))
    expected = sorted((a.channel, key(a.offset)) for a in missed)
    assert sorted((p["channel"], key(p["offset"])) for p in replay) == expected
    assert len({(p["channel"], p["offset"]) for p in replay}) == len(replay)
