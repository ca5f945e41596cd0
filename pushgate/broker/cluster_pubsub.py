"""Live publications from a Redis Cluster: sharded pub/sub (``SSUBSCRIBE``), one connection per
master, each channel subscribed on the master owning its slot.

API (``PubSubConnection``'s, with per-node events): ``ClusterPubSub(url, ping_interval=...)``
with any node's URL (its credentials and TLS serve every node) or a ``redis+cluster://`` URL of
seed nodes; ``start()`` reads the slot map and connects every master (or the first
``next_events()`` does: ``Connected`` once a map was read, ``Disconnected`` while no node gives
one, to be called again after a pause, as ``PubSubConnection`` reconnects);
``subscribe(channel)`` / ``unsubscribe(channel)`` from any task (True when the command went
out; False when the channel's node is down or unknown: its (re)connect subscribes what is
wanted); ``node_of(channel)`` says which master a channel is placed on, ``serves(channel)``
whether that master's connection is up, ``masters()`` every master with its state; exactly one
task calls ``next_events()``, which returns batches of (besides ``Connected``/``Disconnected``
before the first map):

- ``Publication``: in the order its master sent it.
- ``Confirmed(channel, subscribed)``: the answer to one ``subscribe``/``unsubscribe`` call, or
  a resubscription after the channel's node reconnected (as ``PubSubConnection`` after a
  reconnect): a cue to catch up from history when the channel was live.
- ``Resubscribed(channel, reason)``: the channel's live stream had a gap (its slot moved to
  another master) and it is live again on the new owner: catch up from history. It answers no
  call (unlike ``Confirmed``).
- ``NodeConnected(node)`` / ``NodeDisconnected(node, channels, reason)``: one master's
  connection came up or broke; only ``channels`` (those placed on it) lost their live stream.
  The node reconnects by itself, and the slot map is read again in case a replica took over.

How slots move: when a slot migrates away, its old master sends an unasked ``sunsubscribe`` for
each of its sharded channels (Redis >= 7); a SSUBSCRIBE sent to a master that no longer owns the
slot is answered ``MOVED <slot> <host:port>``. Both re-place the channel: the map is patched or
read again (``CLUSTER SHARDS``) and the channel subscribed on its new owner, whose confirmation
is the ``Resubscribed`` (or, for a call still unanswered, its ``Confirmed``). Replies carry no
command id: an error answers the oldest command of its connection still unanswered, so each
connection keeps its SSUBSCRIBE/SUNSUBSCRIBE in flight in order.

Why our own RESP client: redis-py 5.3 (pinned below 6 by arq) has no asyncio sharded pub/sub;
it arrives in redis-py 8. The reading itself is ``pubsub.RespLink``, shared with the standalone
``PubSubConnection``.

Guarantee: per channel, each publication is delivered at most once, in the order its master
sent it; every gap (a move, a node down) is followed by ``Resubscribed`` or ``Confirmed`` once
the channel is live again, after which the history has everything that was missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import hiredis
from redis.asyncio.connection import parse_url

from pushgate.broker.cluster_slots import (
    SlotMap,
    key_slot,
    parse_cluster_shards,
    parse_cluster_slots,
    parse_redirect,
)
from pushgate.broker.keys import channel_from_redis, redis_channel
from pushgate.broker.pubsub import (
    Confirmed,
    Connected,
    Disconnected,
    PubSubError,
    RespLink,
    command,
)
from pushgate.broker.store import decode_live
from pushgate.core.redis_url import is_cluster_url, parse_cluster_url
from pushgate.core.wire import Publication

log = logging.getLogger(__name__)

_ERRORS = (OSError, PubSubError, TimeoutError)
_MIN_BACKOFF = 0.05
_MAX_BACKOFF = 0.5
# Redirects of one channel in a row before it waits for a fresh slot map instead.
_MAX_REDIRECTS = 5
# A SSUBSCRIBE answer: what it tells the caller.
ReplyAs = Literal["confirm", "gap", "none"]


@dataclass(frozen=True, slots=True)
class Resubscribed:
    """``channel`` is live again after a gap in its live stream: catch up from history."""

    channel: str
    reason: str


@dataclass(frozen=True, slots=True)
class NodeConnected:
    """The connection to master ``node`` (``host:port``) is (re)established."""

    node: str


@dataclass(frozen=True, slots=True)
class NodeDisconnected:
    """The connection to ``node`` broke: ``channels`` have no live stream until confirmed."""

    node: str
    channels: frozenset[str]
    reason: str


ClusterEvent = (
    Publication
    | Confirmed
    | Resubscribed
    | NodeConnected
    | NodeDisconnected
    | Connected
    | Disconnected
)


@dataclass(slots=True)
class _Node:
    address: str
    link: RespLink
    names: set[str] = field(default_factory=set)  # placed here: subscribed, or due at connect
    sent: deque[tuple[str, str, ReplyAs]] = field(default_factory=deque)  # unanswered, in order
    up: bool = False
    told_down: bool = False  # its outage was reported
    task: asyncio.Task[None] | None = None


class ClusterPubSub:
    """Sharded pub/sub over every master of a cluster (see the module's docstring)."""

    def __init__(self, redis_url: str, *, ping_interval: float) -> None:
        seeds: list[str] = []
        if is_cluster_url(redis_url):
            cluster = parse_cluster_url(redis_url)
            seeds = [f"{host}:{port}" for host, port in cluster.seeds]
            redis_url = cluster.node_url(*cluster.seeds[0])
        self._options: dict[str, Any] = dict(parse_url(redis_url))
        self._seeds = seeds or [
            f"{self._options.get('host', 'localhost')}:{self._options.get('port', 6379)}"
        ]
        self._ping_interval = ping_interval
        self._map = SlotMap(())
        self._nodes: dict[str, _Node] = {}
        self._placed: dict[str, _Node] = {}  # wanted channel (Redis name) -> its node
        self._homeless: dict[str, ReplyAs] = {}  # wanted, waiting for a slot map to place it
        self._redirects: dict[str, int] = {}
        self._queue: asyncio.Queue[list[ClusterEvent]] = asyncio.Queue()
        self._stale = asyncio.Event()  # the slot map must be read again
        self._prefer: str | None = None  # a node that knows the news: asked first
        self._maintainer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Read the slot map (raises when no node answers) and connect every master."""
        self._map = await self._fetch_map()
        for address in sorted(self._map.masters()):
            self._node(address)
        self._maintainer = asyncio.create_task(self._maintain(), name="pushgate-cluster-map")

    async def close(self) -> None:
        tasks = [n.task for n in self._nodes.values() if n.task is not None]
        tasks += [self._maintainer] if self._maintainer is not None else []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for node in self._nodes.values():
            await node.link.close()

    def serves(self, channel: str) -> bool:
        """Whether the master owning ``channel``'s slot (as far as we know) is connected: only
        then can a subscribe of it be confirmed soon."""
        name = redis_channel(channel)
        node = self._placed.get(name)  # a wanted channel: no slot to compute (position checks)
        if node is None:
            node = self._nodes.get(self._map.owner(key_slot(name)) or "")
        return node is not None and node.up

    def masters(self) -> list[tuple[str, bool]]:
        """Every master of the slot map (``host:port``, sorted) and whether it is connected."""
        return [
            (address, address in self._nodes and self._nodes[address].up)
            for address in sorted(self._map.masters())
        ]

    def node_of(self, channel: str) -> str | None:
        """Where ``channel`` is subscribed (or due), as ``host:port``."""
        node = self._placed.get(redis_channel(channel))
        return None if node is None else node.address

    def subscribe(self, channel: str) -> bool:
        return self._place(redis_channel(channel), "confirm")

    def unsubscribe(self, channel: str) -> bool:
        name = redis_channel(channel)
        self._redirects.pop(name, None)
        if self._homeless.pop(name, None) == "confirm":
            # Its subscribe was redirected and never answered: answer it now, in order.
            self._queue.put_nowait([Confirmed(channel, subscribed=True)])
        node = self._placed.pop(name, None)
        if node is None:
            return False
        node.names.discard(name)
        return self._send(node, "SUNSUBSCRIBE", name, "confirm")

    async def next_events(self) -> list[ClusterEvent]:
        """Wait for the next batch: everything the masters sent since the last one (first of
        all, the outcome of reading the slot map when it was not read yet)."""
        if self._maintainer is None:
            try:
                await self.start()
            except _ERRORS as exc:
                return [Disconnected(f"no cluster node gave a slot map: {exc!r}")]
            return [Connected()]
        batch = await self._queue.get()
        while not self._queue.empty():
            batch += self._queue.get_nowait()
        return batch

    # Placing channels on masters.

    def _place(self, name: str, reply_as: ReplyAs) -> bool:
        """Subscribe ``name`` on the master owning its slot (as far as we know)."""
        address = self._map.owner(key_slot(name))
        if address is None:
            self._homeless[name] = reply_as
            self._stale.set()
            return False
        node = self._node(address)
        node.names.add(name)
        self._placed[name] = node
        return self._send(node, "SSUBSCRIBE", name, reply_as)

    def _send(self, node: _Node, verb: str, name: str, reply_as: ReplyAs) -> bool:
        if not node.up or not node.link.connected:
            return False  # the node's (re)connect subscribes what is placed on it
        node.link.send(command(verb, name))  # the link writes a loop turn's commands at once
        node.sent.append((verb, name, reply_as))
        return True

    def _node(self, address: str) -> _Node:
        node = self._nodes.get(address)
        if node is None:
            host, _, port = address.rpartition(":")
            options = {**self._options, "host": host, "port": int(port)}
            link = RespLink(options, ping_interval=self._ping_interval)
            node = self._nodes[address] = _Node(address, link)
            node.task = asyncio.create_task(self._run(node), name=f"pushgate-cluster-{address}")
        return node

    # One task per master: connect, subscribe what is placed there, read.

    async def _run(self, node: _Node) -> None:
        backoff = _MIN_BACKOFF
        while True:
            try:
                await node.link.connect()
                self._connected(node)
                backoff = _MIN_BACKOFF
                while True:
                    events = self._handle(node, await node.link.read())
                    if events:
                        self._queue.put_nowait(events)
            except _ERRORS as exc:
                await self._went_down(node, str(exc) or type(exc).__name__)
            if not node.names and node.address not in self._map.masters():
                del self._nodes[node.address]  # no longer a master, and nothing placed here
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)

    def _connected(self, node: _Node) -> None:
        node.up = True
        node.told_down = False
        node.sent.clear()
        self._queue.put_nowait([NodeConnected(node.address)])
        for name in sorted(node.names):
            self._send(node, "SSUBSCRIBE", name, "confirm")

    async def _went_down(self, node: _Node, reason: str) -> None:
        await node.link.close()
        if node.up or not node.told_down:  # once per outage, not per failed reconnect
            log.warning("cluster pub/sub: %s is down (%s)", node.address, reason)
            channels = frozenset(channel_from_redis(name) for name in node.names)
            self._queue.put_nowait([NodeDisconnected(node.address, channels, reason)])
        # On every failed try: a replica may take its slots over, seconds after the failure
        # (the cluster's node timeout), and only a fresh map shows it.
        self._stale.set()
        node.up = False
        node.told_down = True
        node.sent.clear()

    def _handle(self, node: _Node, replies: list[Any]) -> list[ClusterEvent]:
        events: list[ClusterEvent] = []
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                self._refused(node, str(reply), events)
            elif isinstance(reply, list) and len(reply) >= 2:
                kind, name = reply[0], reply[1]
                if kind == "smessage":
                    if (publication := decode_live(name, reply[2])) is not None:
                        events.append(publication)
                elif kind == "ssubscribe":
                    self._answered(node, "SSUBSCRIBE", name, events)
                elif kind == "sunsubscribe":
                    if node.sent and node.sent[0][:2] == ("SUNSUBSCRIBE", name):
                        self._answered(node, "SUNSUBSCRIBE", name, events)
                    else:
                        self._pushed_away(node, name)
        return events

    def _answered(self, node: _Node, verb: str, name: str, events: list[ClusterEvent]) -> None:
        if not node.sent or node.sent[0][:2] != (verb, name):
            raise PubSubError(f"unexpected {verb.lower()} of {name} from {node.address}")
        _verb, _name, reply_as = node.sent.popleft()
        channel = channel_from_redis(name)
        subscribed = verb == "SSUBSCRIBE"
        if subscribed:
            self._redirects.pop(name, None)
        if reply_as == "confirm":
            events.append(Confirmed(channel, subscribed))
        elif reply_as == "gap" and self._placed.get(name) is node:
            events.append(Resubscribed(channel, f"its slot moved to {node.address}"))

    def _refused(self, node: _Node, message: str, events: list[ClusterEvent]) -> None:
        """An error answers the oldest unanswered command: a redirect re-places its channel."""
        redirect = parse_redirect(message)
        if not node.sent or redirect is None or node.sent[0][0] != "SSUBSCRIBE":
            raise PubSubError(f"redis error on the pub/sub connection to {node.address}: {message}")
        _verb, name, reply_as = node.sent.popleft()
        address = redirect.address(node.address.rpartition(":")[0])
        self._map.moved(redirect.slot, address)
        self._prefer = address  # the new owner knows it owns the slot: its map is asked first
        self._stale.set()
        if self._placed.get(name) is not node:
            # Unsubscribed meanwhile (its SUNSUBSCRIBE answer follows): answer the subscribe.
            if reply_as == "confirm":
                events.append(Confirmed(channel_from_redis(name), subscribed=True))
            return
        node.names.discard(name)
        del self._placed[name]
        redirects = self._redirects[name] = self._redirects.get(name, 0) + 1
        if redirects > _MAX_REDIRECTS:
            self._homeless[name] = reply_as  # placed again from the next full slot map
            return
        self._place(name, reply_as)

    def _pushed_away(self, node: _Node, name: str) -> None:
        """The master dropped our subscription unasked: the channel's slot left it."""
        if self._placed.get(name) is not node:
            return
        node.names.discard(name)
        del self._placed[name]
        self._homeless[name] = "gap"
        self._prefer = node.address  # it knows where the slot went
        self._stale.set()

    # The slot map.

    async def _maintain(self) -> None:
        """Read the slot map again whenever it may be stale, and re-place what it moved."""
        backoff = _MIN_BACKOFF
        while True:
            await self._stale.wait()
            self._stale.clear()
            try:
                self._map = await self._fetch_map()
            except _ERRORS as exc:
                log.warning("cluster pub/sub: no node answered for the slot map (%r)", exc)
                self._stale.set()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            backoff = _MIN_BACKOFF
            self._rebalance()
            await asyncio.sleep(
                _MIN_BACKOFF
            )  # bursts of news (a whole slot's channels) share one read

    def _rebalance(self) -> None:
        for name, node in list(self._placed.items()):
            owner = self._map.owner(key_slot(name))
            if owner is not None and owner != node.address:
                node.names.discard(name)
                del self._placed[name]
                self._send(node, "SUNSUBSCRIBE", name, "none")
                self._place(name, "gap")
        homeless, self._homeless = self._homeless, {}
        for name, reply_as in homeless.items():
            self._place(name, reply_as)
        for address in self._map.masters():
            self._node(address)

    async def _fetch_map(self) -> SlotMap:
        """The slot map from the first node that answers: the preferred one, connected
        masters, then the seed."""
        preferred = [self._prefer] if self._prefer else []
        self._prefer = None
        known = [a for a, n in self._nodes.items() if n.up]
        candidates = list(dict.fromkeys([*preferred, *known, *self._nodes, *self._seeds]))
        failure: BaseException = PubSubError("no cluster node to ask")
        for address in candidates:
            try:
                return await self._ask_map(address)
            except _ERRORS as exc:
                failure = exc
        raise failure

    async def _ask_map(self, address: str) -> SlotMap:
        host, _, port = address.rpartition(":")
        link = RespLink({**self._options, "host": host, "port": int(port)}, ping_interval=1.0)
        try:
            await link.connect()
            async with asyncio.timeout(self._ping_interval * 3):
                reply = await link.request("CLUSTER", "SHARDS")
                if isinstance(reply, hiredis.ReplyError):  # Redis < 7
                    reply = await link.request("CLUSTER", "SLOTS")
                    if isinstance(reply, hiredis.ReplyError):
                        raise PubSubError(f"{address} gave no slot map: {reply}")
                    return parse_cluster_slots(reply)
                return parse_cluster_shards(reply)
        finally:
            await link.close()
