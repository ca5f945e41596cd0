"""What goes out on one socket: written at once while the client keeps up, queued otherwise.

Shared code only ever calls ``push`` (never awaits a client). A frame is written straight to the
socket when nothing is queued before it and the socket can take it (see ``direct.py``); else it
joins a bounded queue that a writer task, started only then, drains. A client whose queue
overflows, or whose socket takes no frame for the send timeout, is closed as a slow consumer
(4408), so it costs its own queue and nothing else. From that moment the outbox is closing and
writes nothing more: the client gets a gap-free prefix of its frames, then the close, never
frames after a gap. Every frame written (not the close) is counted in the outbox's ``Tally``
(``pushgate_messages_sent_total``), with a plain int: the fan-out writes thousands per
publication.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from gateway.delivery.direct import DirectSink, DirectWrites, Transport
from gateway.delivery.feed import Feed
from gateway.metrics import Tally
from pushgate.core.errors import CloseCode
from pushgate.core.settings import LimitSettings
from pushgate.core.wire import (
    OffsetKey,
    Publication,
    close_reason,
    text_frame,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str


class Outbox:
    """One socket's frames, in order; after a drop (a stall, an overflow) nothing but the close."""

    __slots__ = (
        "_aborted", "_client", "_closing", "_direct", "_queue", "_send_deadline", "_send_timeout",
        "_sent", "_size", "_transport", "_websocket", "_writer",
    )  # fmt: skip

    def __init__(
        self,
        websocket: WebSocket,
        *,
        size: int,
        send_timeout: float,
        sent: Tally,
        client: str,
        transport: Transport | None = None,
        direct: DirectSink | None = None,
    ) -> None:
        self._websocket = websocket
        self._client = client
        self._size = size
        self._send_timeout = send_timeout
        self._sent = sent
        self._transport = transport
        self._direct = direct
        # A list, not a deque: an empty deque costs ~700 bytes on every idle socket, and the
        # queue is short (ws_queue_size) and rarely used (only while the client lags).
        self._queue: list[str | _Close] = []
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._aborted: _Close | None = None
        self._send_deadline: asyncio.Timeout | None = None

    @classmethod
    def for_socket(
        cls,
        websocket: WebSocket,
        limits: LimitSettings,
        transport: Transport | None,
        sent: Tally,
        client: str,
        writes: DirectWrites | None = None,
    ) -> Outbox:
        """An outbox bounded by the gateway's per-socket limits, counting its frames in ``sent``
        (``client``: the connection's id, for the logs); with ``writes``, frames are written
        straight to the socket where that is safe."""
        return cls(
            websocket,
            size=limits.ws_queue_size,
            send_timeout=limits.ws_send_timeout,
            sent=sent,
            client=client,
            transport=transport,
            direct=writes.sink_for(transport) if writes is not None else None,
        )

    @property
    def closing(self) -> bool:
        return self._closing

    def push(self, text: str, wire: bytes | None = None) -> None:
        """Send a text frame; ``wire`` is the same frame already encoded, when the caller has it."""
        if self._closing:
            return
        # Nothing queued before it: try the socket itself.
        direct = self._direct
        if (
            self._writer is None
            and direct is not None
            and direct.write(wire if wire is not None else text_frame(text.encode()))
        ):
            self._sent.count += 1
            return
        if len(self._queue) >= self._size:
            self.overflowed()
            return
        self._queue.append(text)
        self._start_writer()

    def overflowed(self) -> None:
        """The client fell behind by more than the queue holds: close it as a slow consumer."""
        self.abort(CloseCode.SLOW_CONSUMER, "client is not reading fast enough")

    def feed(
        self,
        forward: Callable[[Publication], None],
        *,
        after: OffsetKey | None,
        on_lost: Callable[[], None],
    ) -> Feed:
        """A feed into this outbox, holding back at most as much as the outbox queues."""
        return Feed(
            forward, after=after, held_limit=self._size, overflow=self.overflowed, on_lost=on_lost
        )

    def finish(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close after everything already queued has been sent."""
        if self._closing:
            return
        self._closing = True
        self._queue.append(_Close(code, reason))
        self._start_writer()

    def abort(self, code: int, reason: str) -> None:
        """Close now: drop what is queued, and stop waiting on a send the client blocks."""
        self._closing = True
        self._aborted = _Close(code, reason)
        self._queue.clear()
        self._queue.append(self._aborted)
        if self._send_deadline is not None:
            self._send_deadline.reschedule(asyncio.get_running_loop().time())
        self._start_writer()

    async def stop(self) -> None:
        """The connection is over: stop writing."""
        writer = self._writer
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    def _start_writer(self) -> None:
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._queue:
                if await self._send(self._queue.pop(0)):
                    return
        except (WebSocketDisconnect, OSError, RuntimeError):
            self._queue.clear()  # the client is gone; the reader sees it too
        finally:
            self._writer = None

    async def _send(self, item: str | _Close) -> bool:
        """Send one queued item; True once the socket is closed (by us, or given up on)."""
        try:
            async with asyncio.timeout(self._send_timeout) as self._send_deadline:
                if isinstance(item, _Close):
                    await _close(self._websocket, item)
                    return True
                await self._websocket.send_text(item)
                self._sent.count += 1
                return False
        except TimeoutError:
            await self._close_after_stall()
            return True
        finally:
            self._send_deadline = None

    async def _close_after_stall(self) -> None:
        # The stalled frame was not written (uvicorn waits for the socket to be writable first),
        # so what the client has is gap-free; from here on nothing but the close is written.
        close = self._aborted or _Close(CloseCode.SLOW_CONSUMER, "send timed out")
        self._closing = True
        self._queue.clear()
        fields = {"client": self._client, "code": close.code}
        log.info("closing a stalled client (%s)", close.reason, extra=fields)
        if self._transport is not None:
            self._transport.close_now(close.code, close_reason(close.reason))
            return
        # Another server's socket: its close waits for the client too, so bounded.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._send_timeout):
                await _close(self._websocket, close)


async def _close(websocket: WebSocket, close: _Close) -> None:
    if websocket.application_state == WebSocketState.CONNECTED:
        await websocket.close(close.code, close_reason(close.reason))
