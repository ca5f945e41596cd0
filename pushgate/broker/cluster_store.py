"""The channel store on a Redis Cluster: ``Backend``'s API and guarantees (see ``store``), with
each channel's history, meta, idempotency keys and job record on the master owning its slot.

API: ``ClusterStore(cluster, jobs=...)`` on a ``redis.asyncio.RedisCluster`` made with
``decode_responses=False`` (``cluster_client(url)`` makes one); then every ``Backend`` method:
``publish``, ``publish_many``, ``publish_job_event``, ``create_job``, ``get_job``, ``history``,
``replay``, ``latest``, ``position``, ``positions``, ``ping``.

How it routes (redis-py 5.3, checked in its source): ``RedisCluster`` sends EVALSHA to the master
owning the slot of the script's KEYS (it refuses keys of several slots before sending), loads a
script on NOSCRIPT (SCRIPT LOAD goes to every primary), patches its slot cache on MOVED (and
re-reads the whole map every ``reinitialize_steps`` MOVED), sends ASKING then the command on
ASK, and retries TRYAGAIN, up to 16 redirects per call. Every key of a script is the channel's
hash tag (``keys``), so each script call has one slot; its live fan-out is ``SPUBLISH`` to the
sharded channel of that same tag, which reaches only the subscribers of the owning node (and its
replicas): ``cluster_pubsub`` reads it there.

Differences from ``Backend``, and why: the cluster client has no MULTI, so a channel read is one
Lua script (``scripts.READ_SCRIPT``); ``publish_many`` and ``positions`` span slots, so they are
per-slot script calls, in order per slot and a few slots at a time. ``cluster_client`` turns
redis-py's cluster retries off: they re-send a script whose reply was lost (a publication stored
twice, seen with concurrent publishers during a slot move). A script a master lacks is sent
there by EVAL (redis-py's SCRIPT LOAD goes to every primary, and fails while one is down).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any, cast

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode, PipelineCommand
from redis.commands.core import AsyncScript
from redis.exceptions import AskError, ClusterError, MovedError, NoScriptError, TryAgainError
from redis.typing import EncodableT, KeyT

from pushgate.broker import scripts
from pushgate.broker.cluster_slots import key_slot
from pushgate.broker.keys import history_key, meta_key, redis_channel
from pushgate.broker.store import (
    PUBLISH_MANY_CHUNK,
    Backend,
    ChannelRead,
    Entry,
    HistoryPolicy,
    ScriptCall,
    _text,
    position_keys,
    position_pairs,
    publish_many_call,
)
from pushgate.core.redis_url import is_cluster_url, parse_cluster_url

# Rounds of redis-py's routing, then by hand, a script call makes while its slot changes hands,
# and the pause after a round refused with TRYAGAIN or MOVED.
_ROUNDS = 5
_TRY_AGAIN_PAUSE = 0.05
# Script calls of one batch in flight at once (each holds a connection to its master).
_CONCURRENCY = 16


def cluster_client(url: str, *, socket_timeout: float | None = None) -> RedisCluster:
    """A cluster client from any node's URL, or a ``redis+cluster://`` URL of seed nodes (it
    reads the whole map from the first that answers), that never sends a command twice:
    redis-py's cluster retries re-run a script whose reply was lost (a publication stored
    twice), and a full map refresh every few MOVED closes every connection, failing commands
    in flight on all masters. MOVED still patches the slot map."""
    options: dict[str, Any] = {
        "cluster_error_retry_attempts": 0,
        "reinitialize_steps": 0,
        "socket_timeout": socket_timeout,
    }
    if not is_cluster_url(url):
        client: RedisCluster = RedisCluster.from_url(url, **options)
        return client
    parsed = parse_cluster_url(url)
    seeds = [ClusterNode(host, port) for host, port in parsed.seeds]
    seeded: RedisCluster = RedisCluster(
        startup_nodes=seeds, username=parsed.username, password=parsed.password, **options
    )
    return seeded


class _ClusterScript(AsyncScript):
    """A script run by EVALSHA on its keys' master, or by EVAL there when that master lacks it
    (new, restarted, or a promoted replica): redis-py's own fallback loads it on every primary
    first, so one master down would fail scripts on all of them.

    When redis-py gives up following redirects (no attempt ran the script, so another is safe),
    the call is made by hand: redis-py's ASK handling sends ASKING on one pooled connection and
    the command on another whenever several are free, which concurrent writers during a slot
    move hit again and again; by hand, ASKING and the script share one connection. A TRYAGAIN
    (the slot's keys are between masters) or MOVED by hand starts another round after a pause."""

    def __init__(self, cluster: RedisCluster, script: str) -> None:
        # redis-py types scripts for its single-node client only; the cluster client routes
        # EVALSHA and EVAL by the script's keys.
        super().__init__(cast(Redis, cluster), script)
        self._cluster = cluster

    async def __call__(
        self,
        keys: Sequence[KeyT] | None = None,
        args: Iterable[EncodableT] | None = None,
        client: Redis | None = None,
    ) -> Any:
        keys = list(keys or ())
        call = (len(keys), *keys, *(args or ()))
        for _ in range(_ROUNDS - 1):
            # Each way out of a round but the reply is a redirect or TRYAGAIN: nothing ran.
            try:
                return await self._routed(call)
            except ClusterError:
                pass  # redis-py gave up following redirects
            try:
                return await self._by_hand(str(keys[0]), call)
            except (MovedError, TryAgainError):
                await asyncio.sleep(_TRY_AGAIN_PAUSE)  # the slot is changing hands
        return await self._routed(call)

    async def _routed(self, call: tuple[EncodableT, ...]) -> Any:
        try:
            return await self._cluster.execute_command("EVALSHA", self.sha, *call)
        except NoScriptError:
            return await self._cluster.execute_command("EVAL", self.script, *call)

    async def _by_hand(self, key: str, call: tuple[EncodableT, ...]) -> Any:
        node = self._cluster.get_node_from_key(key)
        if node is None:
            raise ClusterError(f"no master known for {key}")
        try:
            return await node.execute_command("EVAL", self.script, *call)
        except AskError as ask:
            target = self._cluster.get_node(host=ask.host, port=ask.port)
            if target is None:
                raise
            commands = [
                PipelineCommand(0, "ASKING"),
                PipelineCommand(1, "EVAL", self.script, *call),
            ]
            await target.execute_pipeline(commands)
            result = commands[1].result
            if isinstance(result, Exception):
                raise result from ask
            return result


def _by_slot(channels: Iterable[str]) -> dict[int, list[int]]:
    """The places of ``channels``, grouped by their slot (in order within each)."""
    by_slot: dict[int, list[int]] = {}
    for index, channel in enumerate(channels):
        by_slot.setdefault(key_slot(redis_channel(channel)), []).append(index)
    return by_slot


def _entry(raw: list[Any]) -> Entry:
    """A stream entry as Lua returns it ({id, {field, value, ...}}) in redis-py's shape."""
    entry_id, flat = raw
    return entry_id, dict(zip(flat[::2], flat[1::2], strict=True))


class ClusterStore(Backend):
    """``Backend`` on a Redis Cluster client (returning bytes)."""

    def __init__(self, cluster: RedisCluster, *, jobs: HistoryPolicy) -> None:
        self._cluster = cluster
        self._commands = cluster
        self._setup(self._script, scripts.channel_scripts("SPUBLISH"), jobs)
        self._read_script = self._script(scripts.READ_SCRIPT)

    def _script(self, text: str) -> AsyncScript:
        return _ClusterScript(self._cluster, text)

    async def ping_master(self, address: str) -> bool:
        """PING one master (``host:port``) on the client's own connection to it; a node the
        client does not know (yet: a promoted replica) on a connection of its own."""
        host, _, port = address.rpartition(":")
        node = self._cluster.get_node(host=host, port=int(port))
        if node is not None:
            return bool(await node.execute_command("PING"))
        options: dict[str, Any] = dict(self._cluster.get_connection_kwargs())
        node = ClusterNode(host, int(port), **options)
        try:
            return bool(await node.execute_command("PING"))
        finally:
            await node.disconnect()

    async def _read(
        self, channel: str, first: str, limit: int | None, *, newest_first: bool = False
    ) -> ChannelRead:
        epoch, trimmed, entries, newest = await self._read_script(
            keys=[history_key(channel), meta_key(channel)],
            args=[first, "" if limit is None else limit, int(newest_first)],
        )
        return ChannelRead(
            epoch, trimmed, [_entry(raw) for raw in entries], [_entry(raw) for raw in newest]
        )

    async def publish_many(
        self, items: Sequence[tuple[str, Any]], policy: HistoryPolicy
    ) -> list[tuple[str, str]]:
        """``publish`` for each (channel, data), in order per channel: one script call per slot
        and ``PUBLISH_MANY_CHUNK`` items, all in one pipeline."""
        by_slot = _by_slot(channel for channel, _ in items)
        groups: list[list[int]] = []
        calls: list[ScriptCall] = []
        for indexes in by_slot.values():
            for start in range(0, len(indexes), PUBLISH_MANY_CHUNK):
                group = indexes[start : start + PUBLISH_MANY_CHUNK]
                groups.append(group)
                calls.append(publish_many_call([items[i] for i in group], policy))
        positions: list[tuple[str, str]] = [("", "")] * len(items)
        for group, replies in zip(
            groups, await self._pipelined(self._publish_many, calls), strict=True
        ):
            for index, (offset, epoch) in zip(group, replies, strict=True):
                positions[index] = (_text(offset), _text(epoch))
        return positions

    async def positions(self, channels: Sequence[str]) -> list[tuple[str, str]]:
        """``position`` of each channel: one script call per slot (a script's keys share one)."""
        by_slot = _by_slot(channels)
        calls: list[ScriptCall] = [
            (position_keys([channels[index] for index in group]), []) for group in by_slot.values()
        ]
        positions: list[tuple[str, str]] = [("", "")] * len(channels)
        replies = await self._pipelined(self._positions, calls)
        for group, flat in zip(by_slot.values(), replies, strict=True):
            for index, position in zip(group, position_pairs(flat), strict=True):
                positions[index] = position
        return positions

    async def _pipelined(self, script: AsyncScript, calls: list[ScriptCall]) -> list[Any]:
        """Each call of ``script``, in order per slot, at most ``_CONCURRENCY`` at a time.
        (redis-py's ClusterPipeline would need its retries on, see ``cluster_client``.)"""
        by_slot: dict[int, list[int]] = {}
        for index, (keys, _) in enumerate(calls):
            by_slot.setdefault(key_slot(keys[0]), []).append(index)
        replies: list[Any] = [None] * len(calls)
        limit = asyncio.Semaphore(_CONCURRENCY)

        async def run(indexes: list[int]) -> None:
            async with limit:
                for index in indexes:
                    keys, args = calls[index]
                    replies[index] = await script(keys=keys, args=args)

        await asyncio.gather(*(run(indexes) for indexes in by_slot.values()))
        return replies
