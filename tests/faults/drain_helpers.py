"""Real clients of a draining gateway: they record when and how they were closed."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets

from pushgate.client import PushgateClient, Subscription

# Every wait on a gateway is bounded by this (a drain under test lasts a few seconds).
WATCH_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Closed:
    """How one socket or stream ended: its endpoint, when (time.monotonic()), and the code."""

    kind: str
    at: float
    code: int | None  # None for an SSE stream, which ends without one


async def open_rpc(ws_url: str, channel: str) -> websockets.ClientConnection:
    """A ``/ws`` client, connected and subscribed to ``channel``."""
    socket = await websockets.connect(f"{ws_url}/ws", compression=None)
    for request_id, method, params in ((1, "connect", {}), (2, "subscribe", {"channel": channel})):
        request = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        await socket.send(json.dumps(request))
        async with asyncio.timeout(WATCH_TIMEOUT):
            answer = json.loads(await socket.recv())
        assert "result" in answer, answer
    return socket


async def open_job_socket(ws_url: str, request_id: str) -> websockets.ClientConnection:
    """A ``/ws/jobs`` client that has read the job's first event."""
    socket = await websockets.connect(f"{ws_url}/ws/jobs/{request_id}", compression=None)
    async with asyncio.timeout(WATCH_TIMEOUT):
        first = json.loads(await socket.recv())
    assert first["data"]["type"] == "queued", first
    return socket


async def watch_socket(kind: str, socket: websockets.ClientConnection) -> Closed:
    """Read until the server closes the socket."""
    async with asyncio.timeout(WATCH_TIMEOUT):
        with contextlib.suppress(websockets.ConnectionClosed):
            async for _frame in socket:
                pass
    return Closed(kind, time.monotonic(), socket.close_code)


async def watch_sse(http: httpx.AsyncClient, url: str, opened: asyncio.Event) -> Closed:
    """Open an event stream, set ``opened`` once it flows, read until the server ends it."""
    async with asyncio.timeout(WATCH_TIMEOUT), http.stream("GET", url) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("retry:"):
                opened.set()
    return Closed("sse", time.monotonic(), None)


async def refused_code(url: str) -> int | None:
    """The close code a new WebSocket connection to ``url`` gets."""
    async with websockets.connect(url, compression=None) as socket:
        return (await watch_socket("new", socket)).code


def histogram(moments: list[float], window: float, buckets: int = 10) -> list[int]:
    """How many ``moments`` (seconds from the signal) fall in each tenth of ``window``; late
    ones count in the last bucket."""
    counts = [0] * buckets
    for moment in moments:
        counts[min(buckets - 1, max(0, int(moment / window * buckets)))] += 1
    return counts


def rotating(urls: list[str], start: int) -> Callable[[], str]:
    """A client's URL source: the gateways in turn, from ``start``."""
    ring = itertools.cycle(urls[start:] + urls[:start])
    return lambda: next(ring)


class Fleet:
    """Python clients, each with the gateways' URLs in turn from its own start, subscribed to
    channels; they record every offset they get and every resubscription the server answers."""

    def __init__(self, ws_urls: list[str], *, clients: int) -> None:
        self.clients = [
            PushgateClient(rotating(ws_urls, i % len(ws_urls)), backoff_max=1.0,
                           on_recovery=self._recovered(i))
            for i in range(clients)
        ]  # fmt: skip
        self.received: dict[tuple[int, str], list[str]] = {}
        self.resumed = [0] * clients
        self.unrecovered: list[tuple[int, str]] = []
        self._consumers: list[asyncio.Task[None]] = []

    def _recovered(self, index: int) -> Callable[[Subscription], None]:
        def note(subscription: Subscription) -> None:
            self.resumed[index] += 1
            if not subscription.recovered:
                self.unrecovered.append((index, subscription.channel))

        return note

    async def subscribe(self, channels: list[str]) -> None:
        for index, client in enumerate(self.clients):
            await client.connect()
            for channel in channels:
                subscription = await client.subscribe(channel)
                got = self.received.setdefault((index, channel), [])
                self._consumers.append(asyncio.create_task(_consume(subscription, got)))

    async def wait_for(self, published: dict[str, list[str]], *, timeout: float) -> None:
        """Until every client has as many publications of each channel as were published."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(
            len(got) < len(published[channel]) for (_i, channel), got in self.received.items()
        ):
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        await asyncio.gather(*self._consumers, return_exceptions=True)

    def report(self, published: dict[str, list[str]]) -> list[list[object]]:
        """Per channel: clients, published, received, lost, duplicated, out of order."""
        rows: list[list[object]] = []
        for channel, wanted in sorted(published.items()):
            lists = [got for (_i, name), got in self.received.items() if name == channel]
            lost = sum(len(set(wanted) - set(got)) for got in lists)
            duplicated = sum(len(got) - len(set(got)) for got in lists)
            disordered = sum(not _increasing(got, wanted) for got in lists)
            received = sum(map(len, lists))
            rows.append([channel, len(lists), len(wanted), received, lost, duplicated, disordered])
        return rows


def _increasing(got: list[str], wanted: list[str]) -> bool:
    """Whether ``got`` keeps the order in which ``wanted`` was published."""
    order = {offset: index for index, offset in enumerate(wanted)}
    positions = [order[offset] for offset in got if offset in order]
    return all(a < b for a, b in itertools.pairwise(positions))


async def _consume(subscription: Subscription, into: list[str]) -> None:
    async for publication in subscription:
        into.append(publication.offset)


@dataclass
class Publisher:
    """Publishes ``{"n": i}`` on the channels in turn through the gateways' HTTP API. A failed
    publish goes to the next gateway with the same Idempotency-Key, so each is stored once."""

    http_urls: list[str]
    channels: list[str]
    published: dict[str, list[str]] = field(default_factory=dict)
    retries: int = 0

    async def run(self, stop: asyncio.Event, *, interval: float, limit: int) -> None:
        gateways = itertools.cycle(self.http_urls)
        async with httpx.AsyncClient(timeout=5) as http:
            for n in range(limit):
                if stop.is_set():
                    return
                channel = self.channels[n % len(self.channels)]
                offset = await self._publish(http, gateways, channel, {"n": n})
                self.published.setdefault(channel, []).append(offset)
                await asyncio.sleep(interval)

    async def _publish(
        self,
        http: httpx.AsyncClient,
        gateways: itertools.cycle[str],
        channel: str,
        data: dict[str, Any],
    ) -> str:
        key = uuid.uuid4().hex
        for _attempt in range(50):
            url = f"{next(gateways)}/channels/{channel}/publications"
            try:
                headers = {"Idempotency-Key": key}
                response = await http.post(url, json={"data": data}, headers=headers)
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 200:
                return str(response.json()["offset"])
            self.retries += 1
            await asyncio.sleep(0.05)
        raise AssertionError(f"publish to {channel} failed on every gateway")


def print_table(title: str, header: list[str], rows: list[list[object]]) -> None:
    table: list[list[object]] = [list(header), *rows]
    widths = [max(len(str(cell)) for cell in column) for column in zip(*table, strict=True)]
    print(f"\n{title}")
    for row in table:
        print("  ".join(str(cell).rjust(width) for cell, width in zip(row, widths, strict=True)))
