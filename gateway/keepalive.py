"""Every socket's next keepalive moment (a ping to send, a pong's deadline) on one timer per server.

uvicorn's WebSocket protocols hold an event-loop timer per socket (a ``TimerHandle`` and, under
uvloop, a libuv timer: about 0.5 kB per idle connection), re-armed at every ping. Here a socket
is a member of the set of the tick its moment falls in; one timer walks the ticks that came due.
A moment is late by at most one tick (``TICK_SECONDS``, or less for short intervals), which
pings of tens of seconds do not notice; sockets due in the same tick are pinged together, as they
would be when they connected in the same tenth of a second.
"""

from __future__ import annotations

import asyncio
import math
from typing import Protocol

TICK_SECONDS = 0.1


class Due(Protocol):
    def keepalive_due(self) -> None:
        """Its moment came: ping, or give up on the pong."""


class Keepalive:
    """The sockets of one server, by the tick their keepalive moment falls in."""

    __slots__ = ("_buckets", "_loop", "_tick", "_timer", "_timer_key")

    def __init__(self, loop: asyncio.AbstractEventLoop, shortest: float) -> None:
        self._loop = loop
        # Fine enough for the shortest delay asked for (tests ping every few tenths of a second).
        self._tick = min(TICK_SECONDS, shortest / 4)
        self._buckets: dict[int, set[Due]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_key = 0

    def schedule(self, socket: Due, delay: float) -> set[Due]:
        """Call ``socket.keepalive_due()`` in about ``delay`` seconds; returns the set it is in
        (discard it from that set to cancel)."""
        key = math.ceil((self._loop.time() + delay) / self._tick)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = set()
        bucket.add(socket)
        if self._timer is None or key < self._timer_key:
            self._arm(key)
        return bucket

    def _arm(self, key: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_key = key
        self._timer = self._loop.call_at(key * self._tick, self._run)

    def _run(self) -> None:
        self._timer = None
        # A timer may fire a little early (uvloop's are in whole milliseconds): a hundredth of a
        # tick is close enough to count.
        now = self._loop.time() / self._tick + 0.01
        for key in [key for key in self._buckets if key <= now]:
            for socket in self._buckets.pop(key):
                socket.keepalive_due()  # may schedule it again, always in a later tick
        if self._buckets:
            self._arm(min(self._buckets))
