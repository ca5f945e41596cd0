"""Channel positions read in batches: one batch in flight at a time, and every read asked for
meanwhile goes to Redis in the next one.

A connect storm subscribes thousands of clients within seconds, each to a channel this gateway
may not have live yet, and each such subscribe reads the channel's newest position. One Redis
call per client cost more CPU (redis-py's per-call overhead) than the rest of the subscribe. The
reads of one loop turn are rarely more than one or two even in a storm, as clients arrive one
by one; the reads that arrive while a batch is in flight are many, so the batches grow with the
load and cost one round trip of waiting at most.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

Position = tuple[str, str]  # (epoch, newest offset), as Backend.position gives it


class Positions(Protocol):
    """What reads positions: a ``Backend``, or the broker plane's ``ShardedStore``."""

    async def positions(self, channels: Sequence[str]) -> list[Position]: ...


# Bounds one batch: more reads waiting than this go in several, one after the other.
MAX_BATCH = 500


class PositionReads:
    """``Backend.position`` for many callers at once; each gets its own channel's answer. A batch
    that Redis does not answer within ``timeout`` seconds fails with TimeoutError, so that a
    hung Redis holds up no read asked for after it recovers."""

    __slots__ = ("_backend", "_pending", "_sender", "_timeout")

    def __init__(self, backend: Positions, *, timeout: float) -> None:
        self._backend = backend
        self._timeout = timeout
        self._pending: list[tuple[str, asyncio.Future[Position]]] = []
        self._sender: asyncio.Task[None] | None = None  # sends batches while reads wait

    def read(self, channel: str) -> asyncio.Future[Position]:
        """The position of ``channel``, read with every other read waiting for the next batch."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Position] = loop.create_future()
        self._pending.append((channel, future))
        if self._sender is None:
            self._sender = loop.create_task(self._send())
        return future

    async def _send(self) -> None:
        try:
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                await self._read(batch)
        finally:
            self._sender = None

    async def _read(self, batch: list[tuple[str, asyncio.Future[Position]]]) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                positions = await self._backend.positions([channel for channel, _ in batch])
        except Exception as exc:  # every caller gets it, as from its own call
            for _, future in batch:
                if not future.done():  # a caller that gave up (a timeout) cancelled its own
                    future.set_exception(exc)
            return
        for (_, future), position in zip(batch, positions, strict=True):
            if not future.done():
                future.set_result(position)
