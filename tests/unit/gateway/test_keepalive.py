"""One timer for every socket's keepalive moment (gateway/keepalive.py), on a real event loop."""

from __future__ import annotations

import asyncio

from gateway.keepalive import Keepalive


class Socket:
    def __init__(self, name: str, calls: list[str], done: asyncio.Event, last: int) -> None:
        self.name, self.calls, self.done, self.last = name, calls, done, last

    def keepalive_due(self) -> None:
        self.calls.append(self.name)
        if len(self.calls) == self.last:
            self.done.set()


async def test_each_socket_is_called_once_in_order_of_its_moment_and_cancels_hold() -> None:
    loop = asyncio.get_running_loop()
    keepalive = Keepalive(loop, shortest=0.04)  # ticks of 10 ms
    calls: list[str] = []
    done = asyncio.Event()
    late, early, cancelled = (Socket(n, calls, done, 2) for n in ("late", "early", "cancelled"))
    keepalive.schedule(late, 0.2)
    keepalive.schedule(cancelled, 0.05).discard(cancelled)
    keepalive.schedule(early, 0.05)  # earlier than the armed timer: it is re-armed
    await asyncio.wait_for(done.wait(), 5)
    assert calls == ["early", "late"]


async def test_a_socket_may_schedule_itself_again_from_its_call() -> None:
    keepalive = Keepalive(asyncio.get_running_loop(), shortest=0.04)
    calls: list[str] = []
    done = asyncio.Event()

    class Again(Socket):
        def keepalive_due(self) -> None:
            super().keepalive_due()
            if not done.is_set():
                keepalive.schedule(self, 0.01)

    keepalive.schedule(Again("again", calls, done, 3), 0.01)
    await asyncio.wait_for(done.wait(), 5)
    assert calls == ["again"] * 3
