"""This process's open sockets and streams: the cap on ``/ws``, and the drain that closes them all.

Every ``WS /ws``, ``WS /ws/jobs`` and ``GET /sse`` registers with a callback that closes it. A
drain closes them with 1012 (service restart: reconnect) spread evenly over a window, so the
clients of a stopping gateway do not all land on the other replicas in the same instant.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable

from pushgate.core.errors import CloseCode

# Closes one socket or stream, with a close code and a reason (``Outbox.finish`` is one).
CloseCallback = Callable[[int, str], None]
DRAIN_CODE = CloseCode.SERVICE_RESTART
DRAIN_REASON = "gateway is draining; reconnect"


class Entry:
    """One open socket or stream, and how to close it."""

    __slots__ = ("capped", "close")

    def __init__(self, close: CloseCallback, *, capped: bool) -> None:
        self.close = close
        self.capped = capped


class Connections:
    """Every open socket and stream of this gateway, each closable by the drain.

    ``/ws`` enters under ``limit`` (uvicorn's own limit ignores WebSockets). Once draining, each
    entry that was open is closed once with 1012 at its own moment of the window, and one that
    registers later is closed as it registers.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.capped = 0
        # A plain attribute, so that a signal handler may set it between any two bytecodes.
        self.draining = False
        self._open: set[Entry] = set()
        self._empty = asyncio.Event()

    def __len__(self) -> int:
        return len(self._open)

    def try_enter(self, close: CloseCallback) -> Entry | None:
        """Register a ``/ws`` connection, or None when the gateway has ``limit`` of them."""
        if self.capped >= self.limit:
            return None
        self.capped += 1
        return self._add(Entry(close, capped=True))

    def register(self, close: CloseCallback) -> Entry:
        """Register a socket or stream that no cap applies to."""
        return self._add(Entry(close, capped=False))

    def leave(self, entry: Entry) -> None:
        """The socket or stream is over (whoever closed it)."""
        if entry not in self._open:
            return
        self._open.discard(entry)
        if entry.capped:
            self.capped -= 1
        if not self._open:
            self._empty.set()

    async def drain(self, window: float, rand: Callable[[], float] = random.random) -> None:
        """Close every open entry with 1012 within ``window`` seconds, evenly spread and jittered
        (see ``spread``), in random order; entries that leave meanwhile are skipped."""
        self.draining = True
        entries = list(self._open)
        random.shuffle(entries)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for entry, moment in zip(entries, spread(len(entries), window, rand), strict=True):
            delay = start + moment - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if entry in self._open:
                entry.close(DRAIN_CODE, DRAIN_REASON)

    async def wait_empty(self, timeout: float) -> int:  # noqa: ASYNC109 - a bound, not a call's
        """Wait up to ``timeout`` seconds for every entry to leave; returns how many are left."""
        if self._open:
            self._empty.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._empty.wait()
        return len(self._open)

    def _add(self, entry: Entry) -> Entry:
        self._open.add(entry)
        if self.draining:  # came in after the drain began: it goes at once
            entry.close(DRAIN_CODE, DRAIN_REASON)
        return entry


def spread(count: int, window: float, rand: Callable[[], float] = random.random) -> list[float]:
    """``count`` moments in ``[0, window)``, one at a random point of each of ``count`` equal
    slots: even at every scale (any tenth of the window holds about a tenth of them), yet no two
    gateways close on the same schedule."""
    if count == 0:
        return []
    slot = window / count
    return [(index + rand()) * slot for index in range(count)]
