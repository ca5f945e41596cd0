"""A well-behaved subscriber on the fuzzed gateway, receiving a steady publication stream.

It runs in a thread with its own event loop, so it keeps reading whatever the fuzz tests block
on. At the end it reports every offset published and every offset received: the fuzzing must
not have cost it one publication, a duplicate, a reordering or its socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from dataclasses import dataclass, field

import websockets

from tests.rpc import RawRpc

PUBLISH_EVERY = 0.02  # seconds
CATCH_UP = 10.0  # seconds the last publications may take to arrive after the stream stops


@dataclass
class CanaryReport:
    published: list[str] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    error: str | None = None  # what ended the canary early, if anything did

    @property
    def lost(self) -> list[str]:
        got = set(self.received)
        return [offset for offset in self.published if offset not in got]


class Canary:
    def __init__(self, ws_url: str, token: str, channel: str) -> None:
        self._ws_url = ws_url
        self._token = token
        self._channel = channel
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="canary", daemon=True)
        self.report = CanaryReport()

    def start(self) -> Canary:
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError(f"the canary did not subscribe: {self.report.error}")
        return self

    def stop(self) -> CanaryReport:
        self._stop.set()
        self._thread.join(CATCH_UP + 10)
        return self.report

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except Exception as exc:  # reported, and asserted on by the suite
            self.report.error = repr(exc)
        finally:
            self._ready.set()

    async def _run(self) -> None:
        # No keepalive pings of our own: websockets draws their payload from the global random
        # generator, which Hypothesis checks is left alone while it draws examples.
        url = f"{self._ws_url}/ws"
        async with (
            websockets.connect(url, ping_interval=None) as subscriber_socket,
            websockets.connect(url, ping_interval=None) as publisher_socket,
        ):
            subscriber, publisher = RawRpc(subscriber_socket), RawRpc(publisher_socket)
            for client in (subscriber, publisher):
                await client.result("connect", {"token": self._token})
            await subscriber.result("subscribe", {"channel": self._channel})
            reader = asyncio.create_task(self._read(subscriber.socket))
            self._ready.set()
            try:
                await self._publish(publisher)
                await self._caught_up(reader)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    async def _publish(self, publisher: RawRpc) -> None:
        count = 0
        while not self._stop.is_set():
            result = await publisher.result("publish", {"channel": self._channel, "data": count})
            self.report.published.append(result["offset"])
            count += 1
            await asyncio.sleep(PUBLISH_EVERY)

    async def _caught_up(self, reader: asyncio.Task[None]) -> None:
        deadline = time.monotonic() + CATCH_UP
        while len(self.report.received) < len(self.report.published):
            if reader.done() or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.05)

    async def _read(self, socket: websockets.ClientConnection) -> None:
        try:
            async for message in socket:
                frame = json.loads(message)
                if frame.get("method") == "publication":
                    self.report.received.append(frame["params"]["offset"])
        except websockets.ConnectionClosed as exc:
            self.report.error = f"the canary's socket closed: {exc!r}"
            return
        self.report.error = f"the canary's socket closed with {socket.close_code}"
