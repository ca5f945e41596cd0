"""Fan-out of one pub/sub connection to every local subscriber of each channel.

A channel is subscribed in Redis when its first local subscriber arrives and unsubscribed when
the last one leaves. Redis answers subscribe/unsubscribe commands in order, so a channel is live
exactly when no command for it is pending and the last one was a subscribe. The reader task only
decodes and hands off: ``Subscriber.deliver`` must never block.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Protocol

from gateway.delivery.direct import DirectWrites
from pushgate.broker.pubsub import Confirmed, Disconnected, LiveEvent, PubSubConnection
from pushgate.broker.store import Backend
from pushgate.core.wire import OffsetKey, Publication, parse_offset

log = logging.getLogger(__name__)

_MIN_BACKOFF = 0.05
_MAX_BACKOFF = 2.0


class Subscriber(Protocol):
    """Anything the hub hands publications to."""

    def deliver(self, publication: Publication) -> None:
        """Take one publication; called from the reader task, must not block."""


class _Channel:
    __slots__ = ("held", "last_key", "live", "position", "subscribers")

    def __init__(self) -> None:
        self.subscribers: set[Subscriber] = set()
        self.live = asyncio.Event()
        # Highest offset handed to subscribers: the hub passes each offset on at most once.
        self.last_key: OffsetKey | None = None
        # Live events held back while a catch-up reads what was missed during a reconnect.
        self.held: list[Publication] | None = None
        # (epoch, offset) at or after which every publication reaches the subscribers: the
        # newest handed off, or a newer one read from the history since the channel went live.
        self.position: tuple[OffsetKey, str, str] | None = None


class Hub:
    """One pub/sub connection fanned out to local subscribers: each publication once and in order,
    with a catch-up from history after every reconnect."""

    def __init__(self, connection: PubSubConnection, backend: Backend) -> None:
        self._connection = connection
        self._backend = backend
        # Corked while a batch is handed out, so each socket's direct writes of it go out as one.
        self.writes = DirectWrites()
        self._channels: dict[str, _Channel] = {}
        self._pending: defaultdict[str, int] = defaultdict(int)
        self._reader: asyncio.Task[None] | None = None
        self._catch_ups: set[asyncio.Task[None]] = set()
        self.connected = False

    async def start(self) -> None:
        """Connect in the background: the gateway serves (unready) while Redis is down."""
        self._reader = asyncio.create_task(self._run(), name="pushgate-hub-reader")

    async def _run(self) -> None:
        backoff = _MIN_BACKOFF
        while True:
            try:
                await self._connection.start()
                break
            except OSError as exc:  # refused, timed out, or AUTH failed
                log.warning("redis pub/sub unavailable (%s); retrying", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
        self.connected = True
        await self._read_loop()

    async def stop(self) -> None:
        tasks = [*self._catch_ups, *([self._reader] if self._reader else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._connection.close()

    @property
    def channel_count(self) -> int:
        return len(self._channels)

    @property
    def subscriber_count(self) -> int:
        """Local subscriptions over all channels (one per socket and channel)."""
        return sum(len(entry.subscribers) for entry in self._channels.values())

    async def subscribe(self, channel: str, subscriber: Subscriber) -> None:
        """Add ``subscriber``; returns once Redis delivers the channel's live events to us.

        While the connection is down the command waits for the reconnect, which subscribes
        every channel wanted.
        """
        entry = self._channels.get(channel)
        if entry is None:
            entry = self._channels[channel] = _Channel()
            entry.subscribers.add(subscriber)
            self._send(channel, subscribe=True)
        else:
            entry.subscribers.add(subscriber)
        await entry.live.wait()

    def attach_at_position(self, channel: str, subscriber: Subscriber) -> tuple[str, str] | None:
        """Attach ``subscriber`` at once where the channel's position is known here: returns the
        (epoch, offset) it starts after. None when it is not (subscribe, and read the history)."""
        entry = self._channels.get(channel)
        if (
            entry is None
            or entry.position is None
            or entry.held is not None  # catching up: the position is not complete
            or not entry.live.is_set()
        ):
            return None
        entry.subscribers.add(subscriber)
        _key, epoch, offset = entry.position
        return epoch, offset

    def note_position(self, channel: str, epoch: str, offset: str) -> None:
        """Remember a position read from the history after the channel went live here."""
        entry = self._channels.get(channel)
        if entry is None or not offset or entry.held is not None:
            return
        key = parse_offset(offset)
        if entry.position is None or key > entry.position[0]:
            entry.position = (key, epoch, offset)

    def unsubscribe(self, channel: str, subscriber: Subscriber) -> None:
        entry = self._channels.get(channel)
        if entry is None or subscriber not in entry.subscribers:
            return
        entry.subscribers.discard(subscriber)
        if not entry.subscribers:
            del self._channels[channel]
            self._send(channel, subscribe=False)

    def _send(self, channel: str, *, subscribe: bool) -> None:
        """Count the command as pending only if it went out: while disconnected, the reconnect
        resubscribes what is wanted, and those confirmations come unasked."""
        connection = self._connection
        sent = connection.subscribe(channel) if subscribe else connection.unsubscribe(channel)
        if sent:
            self._pending[channel] += 1

    def _settle(self, channel: str) -> int:
        left = self._pending[channel] - 1
        if left > 0:
            self._pending[channel] = left
        else:
            self._pending.pop(channel, None)
        return max(left, 0)

    async def _read_loop(self) -> None:
        backoff = _MIN_BACKOFF
        while True:
            events = await self._connection.next_events()
            lost = next((e for e in events if isinstance(e, Disconnected)), None)
            if lost is None:
                self.connected = True
                backoff = _MIN_BACKOFF
                with self.writes.cork:  # each socket gets this batch's frames in one write
                    self._handle(events)
                continue
            log.warning("redis pub/sub disconnected (%s); reconnecting", lost.reason)
            self.connected = False
            # Whatever was in flight died with the connection; the reconnect resubscribes
            # what is wanted, and those confirmations drive the catch-up.
            self._pending.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)

    def _handle(self, events: list[LiveEvent]) -> None:
        for event in events:
            if isinstance(event, Publication):
                self._dispatch(event)
            elif isinstance(event, Confirmed):
                self._on_confirmed(event)

    def _dispatch(self, publication: Publication) -> None:
        entry = self._channels.get(publication.channel)
        if entry is None:
            return
        if entry.held is not None:
            entry.held.append(publication)
        else:
            self._hand_off(entry, publication)

    @staticmethod
    def _hand_off(entry: _Channel, publication: Publication) -> None:
        if entry.last_key is not None and publication.key <= entry.last_key:
            return
        entry.last_key = publication.key
        if entry.position is None or publication.key > entry.position[0]:
            entry.position = (publication.key, publication.epoch, publication.offset)
        for subscriber in tuple(entry.subscribers):
            subscriber.deliver(publication)

    def _on_confirmed(self, event: Confirmed) -> None:
        channel = event.channel
        if channel in self._pending and self._settle(channel) > 0:
            return  # later commands for this channel are still in flight
        entry = self._channels.get(channel)
        if entry is None:
            if event.subscribed:  # resubscribed after a reconnect, but nobody wants it now
                self._send(channel, subscribe=False)
        elif not event.subscribed:
            self._send(channel, subscribe=True)
        elif not entry.live.is_set():
            entry.live.set()
        else:
            self._start_catch_up(channel, entry)

    def _start_catch_up(self, channel: str, entry: _Channel) -> None:
        """After a reconnect, replay what was published while we were away."""
        if entry.held is not None:
            return  # a catch-up is already running; it reads up to the present
        entry.held = []
        task = asyncio.create_task(self._catch_up(channel, entry))
        self._catch_ups.add(task)
        task.add_done_callback(self._catch_ups.discard)

    async def _catch_up(self, channel: str, entry: _Channel) -> None:
        after = None if entry.last_key is None else "{}-{}".format(*entry.last_key)
        missed: list[Publication] = []
        try:
            missed = await self._backend.history(channel, after=after)
        except Exception:
            log.exception("catch-up of %s failed; its gap stays open", channel)
        finally:
            held, entry.held = entry.held or [], None
            for publication in [*missed, *held]:
                self._hand_off(entry, publication)
