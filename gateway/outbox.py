"""One bounded queue and one writer task per socket.

Shared code only ever calls ``push`` (never awaits a client), so a client that stops reading
costs its own queue and nothing else; when the queue overflows the client is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from starlette.websockets import WebSocket, WebSocketState

from pushgate.wire import CloseCode, OffsetKey, Publication, close_reason, parse_offset

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str


class Outbox:
    def __init__(self, size: int) -> None:
        self._queue: asyncio.Queue[str | _Close] = asyncio.Queue(maxsize=size)
        self._closing = False
        self._aborted: _Close | None = None
        self._send_deadline: asyncio.Timeout | None = None

    @property
    def closing(self) -> bool:
        return self._closing

    def push(self, frame: str) -> None:
        if self._closing:
            return
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.abort(CloseCode.SLOW_CONSUMER, "client is not reading fast enough")

    def finish(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close after everything already queued has been sent."""
        if self._closing:
            return
        self._closing = True
        try:
            self._queue.put_nowait(_Close(code, reason))
        except asyncio.QueueFull:
            self._drop_queued_and_close(_Close(code, reason))

    def abort(self, code: int, reason: str) -> None:
        """Close now: drop what is queued, and stop waiting on a send the client blocks."""
        self._closing = True
        self._aborted = _Close(code, reason)
        self._drop_queued_and_close(self._aborted)
        if self._send_deadline is not None:
            self._send_deadline.reschedule(asyncio.get_running_loop().time())

    def _drop_queued_and_close(self, close: _Close) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(close)

    async def run(self, websocket: WebSocket, send_timeout: float) -> None:
        """Send queued frames until a close is queued or a send stalls past ``send_timeout``."""
        while True:
            item = await self._queue.get()
            try:
                async with asyncio.timeout(send_timeout) as self._send_deadline:
                    if isinstance(item, _Close):
                        await _close(websocket, item)
                        return
                    await websocket.send_text(item)
            except TimeoutError:
                await self._close_after_stall(websocket, send_timeout)
                return
            finally:
                self._send_deadline = None

    async def _close_after_stall(self, websocket: WebSocket, send_timeout: float) -> None:
        # No frame was written (uvicorn waits for the socket to be writable before writing),
        # so the close can follow; it reaches the client once it reads what is buffered.
        close = self._aborted or _Close(CloseCode.SLOW_CONSUMER, "send timed out")
        log.info("closing a stalled client (%s)", close.reason)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(send_timeout):
                await _close(websocket, close)


async def _close(websocket: WebSocket, close: _Close) -> None:
    if websocket.application_state == WebSocketState.CONNECTED:
        await websocket.close(close.code, close_reason(close.reason))


class Feed:
    """One client's view of one channel (a hub ``Subscriber``).

    Live events are held back until the history read after subscribing is spliced in front of
    them; from then on each offset passes at most once, in increasing order.
    """

    __slots__ = ("_forward", "_held", "_held_limit", "_last", "_overflow")

    def __init__(
        self,
        forward: Callable[[Publication], None],
        *,
        after: OffsetKey | None,
        held_limit: int,
        overflow: Callable[[], None],
    ) -> None:
        self._forward = forward
        self._last = after
        self._held: list[Publication] | None = []
        self._held_limit = held_limit
        self._overflow = overflow

    def deliver(self, publication: Publication) -> None:
        if self._held is None:
            self._pass(publication)
        elif len(self._held) < self._held_limit:
            self._held.append(publication)
        else:
            self._overflow()

    def go_live(self, history: list[Publication], *, floor: str | None = None) -> None:
        """Send ``history``, then what was held back; nothing at or below offset ``floor``."""
        held, self._held = self._held or [], None
        if floor:
            key = parse_offset(floor)
            if self._last is None or key > self._last:
                self._last = key
        for publication in history:
            self._pass(publication)
        for publication in held:
            self._pass(publication)

    def _pass(self, publication: Publication) -> None:
        if self._last is None or publication.key > self._last:
            self._last = publication.key
            self._forward(publication)
