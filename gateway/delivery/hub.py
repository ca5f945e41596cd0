"""Fan-out of one pub/sub connection to every local subscriber of each channel (with broker
shards, one hub per shard serves that shard's channels: ``gateway/delivery/shards.py``; on a
Redis Cluster, one hub reads every master through ``ClusterPubSub``).

A channel is subscribed in Redis when its first local subscriber arrives and unsubscribed when
the last one leaves. Redis answers subscribe/unsubscribe commands in order, so a channel is live
exactly when no command for it is pending and the last one was a subscribe. The reader task only
decodes and hands off: ``Subscriber.deliver`` must never block.

The delivery invariant (docs/protocol.md, "Delivery"): the hub hands each publication of a
channel to its subscribers once and in offset order, or it drops them all with ``lost()`` so
that each client is told and resumes from its own position. Whatever may have left a hole is
repaired from the history (a reconnect, a position behind Redis's) or ends in ``lost()`` (the
history cannot be read, no longer covers the hub's position, is of another epoch, or
the catch-up fails in any other way, foreign data in the history included).

On a Redis Cluster a gap is per channel: ``Resubscribed`` (its slot moved) catches that channel
up like a channel after a reconnect, and ``NodeDisconnected`` cuts off only the channels of one
master (new subscriptions to them are answered unavailable, waiting ones give up, live ones are
caught up when their master confirms them again); every other channel goes on untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Coroutine, Iterable, Sequence
from typing import Any, Protocol

from redis.exceptions import RedisError

from gateway.delivery.direct import DirectWrites
from gateway.metrics import GatewayMetrics
from pushgate.broker.cluster_pubsub import ClusterEvent, NodeDisconnected, Resubscribed
from pushgate.broker.pubsub import Confirmed, Connected, Disconnected
from pushgate.broker.store import Backend, Replay
from pushgate.core.errors import ErrorKind, PushgateError
from pushgate.core.logs import channel_fields
from pushgate.core.wire import OffsetKey, Publication, parse_offset

log = logging.getLogger(__name__)

_MIN_BACKOFF = 0.05
# Also the longest a reconnect waits once Redis answers again (readiness follows it).
_MAX_BACKOFF = 0.5
# History reads a catch-up tries (with backoff, each bounded) before it gives up on the channel.
_CATCH_UP_TRIES = 6
# Live publications held while a catch-up reads; past this the channel is given up instead.
_HELD_LIMIT = 10_000
_REDIS_ERRORS = (RedisError, OSError, TimeoutError)


class LiveConnection(Protocol):
    """What the hub reads: ``PubSubConnection`` (one Redis) or ``ClusterPubSub`` (a cluster)."""

    def subscribe(self, channel: str) -> bool: ...
    def unsubscribe(self, channel: str) -> bool: ...
    def serves(self, channel: str) -> bool: ...
    async def next_events(self) -> Sequence[ClusterEvent]: ...
    async def close(self) -> None: ...


class Subscriber(Protocol):
    """Anything the hub hands publications to."""

    def deliver(self, publication: Publication) -> None:
        """Take one publication; called from the reader task, must not block."""

    def lost(self) -> None:
        """The hub may have missed publications of the channel and has dropped this subscriber:
        tell the client, which resumes from its own position. Must not block."""


def unavailable() -> PushgateError:
    """What a client waiting on Redis is told while Redis cannot serve it."""
    return PushgateError(ErrorKind.UNAVAILABLE, "the event stream is unavailable; retry")


class _Channel:
    __slots__ = (
        "again",
        "epoch",
        "held",
        "last_key",
        "live",
        "position",
        "subscribers",
        "waiters",
    )

    def __init__(self) -> None:
        self.subscribers: set[Subscriber] = set()
        self.live = False  # Redis confirmed the subscribe: its live events reach us
        # One future per subscriber waiting for the confirmation: True once live, False when
        # the live stream broke first (it gives up). A caller's timeout cancels only its own.
        self.waiters: list[asyncio.Future[bool]] | None = None
        # Highest offset handed to subscribers: the hub passes each offset on at most once.
        self.last_key: OffsetKey | None = None
        # The epoch of every offset handed off or noted: another one means the history was lost.
        self.epoch: str | None = None
        # Live events held back while a catch-up reads what was missed during a reconnect.
        self.held: list[Publication] | None = None
        # A running catch-up must read once more: the connection dropped again meanwhile.
        self.again = False
        # (epoch, offset) at or after which every publication reaches the subscribers: the
        # newest handed off, or a newer one read from the history since the channel went live.
        self.position: tuple[OffsetKey, str, str] | None = None

    def delivered(self) -> OffsetKey | None:
        """Everything up to this offset has reached the subscribers (None: nothing is known)."""
        if self.last_key is not None:
            return self.last_key
        return None if self.position is None else self.position[0]


class Hub:
    """One pub/sub connection (of one broker shard) for the process; each subscriber gets its
    channel's publications once and in order, or ``lost()`` (see the module's docstring)."""

    def __init__(
        self,
        connection: LiveConnection,
        backend: Backend,
        *,
        redis_timeout: float = 1.5,
        position_check: float = 10.0,
        metrics: GatewayMetrics | None = None,
        shard: int = 0,
        writes: DirectWrites | None = None,
    ) -> None:
        self._connection = connection
        self._metrics = metrics
        self._backend = backend
        self._redis_timeout = redis_timeout
        self._position_check = position_check
        self._shard = shard  # the broker shard whose channels this hub serves
        # Corked while a batch is handed out, so each socket's direct writes of it go out as one
        # (shared by the hubs of every shard: each corks only around synchronous code).
        self.writes = writes if writes is not None else DirectWrites()
        self._channels: dict[str, _Channel] = {}
        self._pending: defaultdict[str, int] = defaultdict(int)
        self._tasks: set[asyncio.Task[None]] = set()
        self.connected = False

    async def start(self) -> None:
        """Connect in the background: the gateway serves (unready) while Redis is down."""
        self._spawn(self._read_loop(), "pushgate-hub-reader")
        if self._position_check > 0:
            self._spawn(self._check_positions(), "pushgate-hub-positions")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str | None = None) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        tasks = list(self._tasks)
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

        Raises PushgateError(UNAVAILABLE) at once while the connection (to the channel's master)
        is down, and when it drops before Redis confirmed (the subscriber is then removed again).
        """
        if not self._serves(channel):
            raise unavailable()
        entry = self._channels.get(channel)
        if entry is None:
            entry = self._channels[channel] = _Channel()
            entry.subscribers.add(subscriber)
            self._send(channel, subscribe=True)
        else:
            entry.subscribers.add(subscriber)
        if entry.live:
            return
        waiter = asyncio.get_running_loop().create_future()
        if entry.waiters is None:
            entry.waiters = []
        entry.waiters.append(waiter)
        if not await waiter:
            self.unsubscribe(channel, subscriber)
            raise unavailable()

    def attach_at_position(self, channel: str, subscriber: Subscriber) -> tuple[str, str] | None:
        """Attach ``subscriber`` at once where the channel's position is known here: returns the
        (epoch, offset) it starts after. None when it is not (subscribe, and read the history)."""
        entry = self._channels.get(channel)
        if (
            entry is None
            or not self._serves(channel)
            or entry.position is None
            or entry.held is not None  # catching up: the position is not complete
            or not entry.live
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
        if entry.epoch is not None and epoch != entry.epoch:
            self._lose(channel, entry, "its history was lost (a new epoch)")
            return
        entry.epoch = epoch
        key = parse_offset(offset)
        if entry.position is None or key > entry.position[0]:
            entry.position = (key, epoch, offset)

    def _serves(self, channel: str) -> bool:
        return self.connected and self._connection.serves(channel)

    def unsubscribe(self, channel: str, subscriber: Subscriber) -> None:
        entry = self._channels.get(channel)
        if entry is None or subscriber not in entry.subscribers:
            return
        entry.subscribers.discard(subscriber)
        if not entry.subscribers:
            del self._channels[channel]
            self._send(channel, subscribe=False)

    def _lose(self, channel: str, entry: _Channel, why: str) -> None:
        """Drop every subscriber of a channel the hub may have missed publications of, telling
        each; those that come back subscribe afresh and resume from their own positions."""
        if self._channels.get(channel) is not entry:
            return
        log.warning("lost track of a channel: %s; telling its %d subscribers", why,
                    len(entry.subscribers), extra=channel_fields(channel))  # fmt: skip
        del self._channels[channel]
        self._send(channel, subscribe=False)
        entry.held = None
        self._cut_off_entry(entry)  # a subscriber still waiting for it gives up too
        subscribers, entry.subscribers = entry.subscribers, set()
        for subscriber in subscribers:
            subscriber.lost()

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
                backoff = _MIN_BACKOFF
                with self.writes.cork:  # each socket gets this batch's frames in one write
                    self._handle(events)
                continue
            if self.connected:
                log.warning("redis pub/sub of shard %d disconnected (%s); reconnecting",
                            self._shard, lost.reason, extra={"shard": self._shard})  # fmt: skip
            self._went_down()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)

    def _went_down(self) -> None:
        if self.connected and self._metrics is not None:
            self._metrics.pubsub_reconnects.labels(str(self._shard)).inc()
        self.connected = False
        self._pending.clear()
        self._cut_off(self._channels)

    def _cut_off(self, channels: Iterable[str]) -> None:
        """``channels`` lost their live stream: whatever was in flight for them died with it
        (the reconnect resubscribes what is wanted, and those confirmations drive the
        catch-up), and their subscribers still waiting for a confirmation give up."""
        for channel in channels:
            self._pending.pop(channel, None)
            entry = self._channels.get(channel)
            if entry is not None:
                self._cut_off_entry(entry)

    @staticmethod
    def _cut_off_entry(entry: _Channel) -> None:
        _tell_waiters(entry, live=False)

    def _handle(self, events: Sequence[ClusterEvent]) -> None:
        for event in events:
            if isinstance(event, Publication):
                self._dispatch(event)
            elif isinstance(event, Confirmed):
                self._on_confirmed(event)
            elif isinstance(event, Resubscribed):
                self._on_resubscribed(event)
            elif isinstance(event, NodeDisconnected):
                self._node_down(event)
            elif isinstance(event, Connected):
                self.connected = True

    def _dispatch(self, publication: Publication) -> None:
        channel = publication.channel
        entry = self._channels.get(channel)
        if entry is None:
            return
        if entry.held is None:
            self._hand_off(channel, entry, publication)
        elif len(entry.held) < _HELD_LIMIT:
            entry.held.append(publication)
        else:
            self._lose(channel, entry, "too many publications while catching up")

    def _hand_off(self, channel: str, entry: _Channel, publication: Publication) -> bool:
        """Pass ``publication`` on, once; False when it shows that the history was lost."""
        if entry.epoch is not None and publication.epoch != entry.epoch:
            self._lose(channel, entry, "its history was lost (a new epoch)")
            return False
        if entry.last_key is not None and publication.key <= entry.last_key:
            return True
        entry.epoch = publication.epoch
        entry.last_key = publication.key
        if entry.position is None or publication.key > entry.position[0]:
            entry.position = (publication.key, publication.epoch, publication.offset)
        for subscriber in tuple(entry.subscribers):
            subscriber.deliver(publication)
        if self._metrics is not None:  # per publication, not per subscriber: the hot path
            self._metrics.deliveries.inc(len(entry.subscribers))
            lag = time.time() - publication.key[0] / 1000  # a stream id is Redis's clock in ms
            self._metrics.pubsub_lag.observe(max(lag, 0.0))
        return True

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
        elif not entry.live:
            _went_live(entry)
        else:
            self._start_catch_up(channel, entry)

    def _on_resubscribed(self, event: Resubscribed) -> None:
        """A cluster channel is live again on its slot's new master after a gap."""
        entry = self._channels.get(event.channel)
        if entry is None:
            return
        if not entry.live:
            _went_live(entry)  # its first subscribe was answered by the move: it is live now
        else:
            self._start_catch_up(event.channel, entry)

    def _node_down(self, event: NodeDisconnected) -> None:
        """One cluster master's connection broke: only its channels are cut off."""
        log.warning("redis cluster master %s disconnected (%s); %d channels wait for it",
                    event.node, event.reason, len(event.channels),
                    extra={"node": event.node})  # fmt: skip
        if self._metrics is not None:
            self._metrics.pubsub_reconnects.labels(str(self._shard)).inc()
        self._cut_off(event.channels)

    def _start_catch_up(self, channel: str, entry: _Channel) -> None:
        """Replay from the history what the subscribers may have missed (after a reconnect, or
        when Redis holds newer publications than the hub handed out)."""
        if entry.held is not None:
            entry.again = True  # the running catch-up reads once more before it ends
            return
        entry.held = []
        self._spawn(self._catch_up(channel, entry))

    async def _catch_up(self, channel: str, entry: _Channel) -> None:
        try:
            await self._replay_missed(channel, entry)
        except Exception:  # a bug or foreign data: its subscribers are told, never left waiting
            log.exception("catch-up failed", extra=channel_fields(channel))
            self._lose(channel, entry, "its catch-up failed")

    async def _replay_missed(self, channel: str, entry: _Channel) -> None:
        while True:
            entry.again = False
            replay = await self._read_missed(channel, entry)
            if self._channels.get(channel) is not entry:
                return  # everyone left, or it was given up meanwhile
            if replay is None:
                self._lose(channel, entry, "its history cannot be read")
                return
            if not replay.recovered:
                self._lose(channel, entry, "its history no longer covers what was handed out")
                return
            if not self._hand_off_all(channel, entry, replay.publications):
                return
            if not entry.again:
                break
        held, entry.held = entry.held or [], None
        self._hand_off_all(channel, entry, held)

    def _hand_off_all(self, channel: str, entry: _Channel, publications: list[Publication]) -> bool:
        with self.writes.cork:
            return all(self._hand_off(channel, entry, p) for p in publications)

    async def _read_missed(self, channel: str, entry: _Channel) -> Replay | None:
        """What the history holds after the hub's position (None: it could not be read)."""
        backoff = _MIN_BACKOFF
        for attempt in range(_CATCH_UP_TRIES):
            after = entry.delivered()
            try:
                async with asyncio.timeout(self._redis_timeout):
                    return await self._backend.replay(
                        channel,
                        after=None if after is None else "{}-{}".format(*after),
                        since_epoch=entry.epoch or "",
                    )
            except _REDIS_ERRORS as exc:
                log.warning("catch-up read %d failed (%r)", attempt + 1, exc,
                            extra={**channel_fields(channel), "attempt": attempt + 1})  # fmt: skip
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)
        return None

    async def _check_positions(self) -> None:
        """Every ``position_check`` seconds, one pipelined read of every live channel's newest
        offset: a channel whose newest publication the hub did not hand out is caught up."""
        while True:
            await asyncio.sleep(self._position_check)
            live = [
                (channel, entry)
                for channel, entry in self._channels.items()
                if entry.live
                and entry.held is None
                and channel not in self._pending
                and self._connection.serves(channel)  # a cluster master may be down
            ]
            if not live or not self.connected:
                continue
            try:
                async with asyncio.timeout(self._redis_timeout):
                    positions = await self._backend.positions([channel for channel, _ in live])
            except _REDIS_ERRORS as exc:
                log.warning("position check failed (%r)", exc)
                continue
            for (channel, entry), (epoch, offset) in zip(live, positions, strict=True):
                if self._channels.get(channel) is entry and _behind(entry, epoch, offset):
                    self._start_catch_up(channel, entry)


def _went_live(entry: _Channel) -> None:
    entry.live = True
    _tell_waiters(entry, live=True)


def _tell_waiters(entry: _Channel, *, live: bool) -> None:
    waiters, entry.waiters = entry.waiters, None
    for waiter in waiters or ():
        if not waiter.done():  # a caller that gave up (its timeout) cancelled its own
            waiter.set_result(live)


def _behind(entry: _Channel, epoch: str, offset: str) -> bool:
    """Whether Redis holds a publication of the channel that the hub has not handed out."""
    if not offset:
        return False  # no history: nothing to miss (a new one shows up as a new epoch)
    if entry.epoch is not None and epoch != entry.epoch:
        return True
    delivered = entry.delivered()
    return delivered is None or parse_offset(offset) > delivered
