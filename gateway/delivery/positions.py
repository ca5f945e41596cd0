"""Channel positions read in batches: every read asked for in one turn of the event loop goes to
Redis as one pipelined round trip.

A connect storm subscribes thousands of clients within seconds, each to a channel this gateway
may not have live yet, and each such subscribe reads the channel's newest position. One Redis
call per client cost more CPU (redis-py's per-command overhead) than the rest of the subscribe;
one pipeline per loop turn costs about the same as one call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

Position = tuple[str, str]  # (epoch, newest offset), as Backend.position gives it


class Positions(Protocol):
    """What reads positions: a ``Backend``, or the broker plane's ``ShardedStore``."""

    async def positions(self, channels: Sequence[str]) -> list[Position]: ...


# Bounds one pipeline: a turn with more reads than this sends several.
MAX_BATCH = 500


class PositionReads:
    """``Backend.position`` for many callers at once; each gets its own channel's answer."""

    __slots__ = ("_backend", "_pending", "_running")

    def __init__(self, backend: Positions) -> None:
        self._backend = backend
        self._pending: list[tuple[str, asyncio.Future[Position]]] = []
        self._running: set[asyncio.Task[None]] = set()  # held, so that none is collected

    def read(self, channel: str) -> asyncio.Future[Position]:
        """The position of ``channel``, read with every other read asked for in this turn."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Position] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._send)
        self._pending.append((channel, future))
        return future

    def _send(self) -> None:
        pending, self._pending = self._pending, []
        loop = asyncio.get_running_loop()
        for start in range(0, len(pending), MAX_BATCH):
            task = loop.create_task(self._read(pending[start : start + MAX_BATCH]))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _read(self, batch: list[tuple[str, asyncio.Future[Position]]]) -> None:
        try:
            positions = await self._backend.positions([channel for channel, _ in batch])
        except Exception as exc:  # every caller gets it, as from its own call
            for _, future in batch:
                if not future.done():  # a caller that gave up (a timeout) cancelled its own
                    future.set_exception(exc)
            return
        for (_, future), position in zip(batch, positions, strict=True):
            if not future.done():
                future.set_result(position)
