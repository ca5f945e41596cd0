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
Lua script (``scripts.READ_SCRIPT``); ``publish_many`` and ``positions`` span slots, so they go
as one ``ClusterPipeline`` (one round trip per master) of per-slot script calls, in order per
channel.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

from redis.asyncio import Redis, RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError
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
    publish_many_call,
)


def cluster_client(url: str) -> RedisCluster:
    """A cluster client from any node's URL (it reads the whole map from there)."""
    client: RedisCluster = RedisCluster.from_url(url)
    return client


class _ClusterScript(AsyncScript):
    """A script run by EVALSHA on its keys' master, or by EVAL there when that master lacks it
    (new, restarted, or a promoted replica): redis-py's own fallback loads it on every primary
    first, so one master down would fail scripts on all of them."""

    async def __call__(
        self,
        keys: Sequence[KeyT] | None = None,
        args: Iterable[EncodableT] | None = None,
        client: Redis | None = None,
    ) -> Any:
        target = client or self.registered_client
        call = (len(keys or ()), *(keys or ()), *(args or ()))
        try:
            return await target.execute_command("EVALSHA", self.sha, *call)  # type: ignore[no-untyped-call]
        except NoScriptError:
            return await target.execute_command("EVAL", self.script, *call)  # type: ignore[no-untyped-call]


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
        # redis-py types scripts for its single-node client only; the cluster client routes
        # EVALSHA and EVAL by the script's keys.
        return _ClusterScript(cast(Redis, self._cluster), text)

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
        by_slot: dict[int, list[int]] = {}
        for index, (channel, _) in enumerate(items):
            by_slot.setdefault(key_slot(redis_channel(channel)), []).append(index)
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
        """``position`` of each channel, one pipeline (one round trip per master)."""
        calls: list[ScriptCall] = [([history_key(c), meta_key(c)], []) for c in channels]
        replies = await self._pipelined(self._position, calls)
        return [(_text(epoch), _text(offset)) for epoch, offset in replies]

    async def _pipelined(self, script: AsyncScript, calls: list[ScriptCall]) -> list[Any]:
        """Each call of ``script`` in one cluster pipeline; a call a master refused with
        NOSCRIPT (it did not run) runs again alone, which loads the script first."""
        pipe = self._cluster.pipeline()
        for keys, args in calls:
            # redis-py blocks its pipeline's ``evalsha`` method on a cluster, not the command:
            # it routes an EVALSHA by its keys like any other.
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        for index, reply in enumerate(replies):
            if isinstance(reply, NoScriptError):
                keys, args = calls[index]
                replies[index] = await script(keys=keys, args=args)  # sends the script itself
            elif isinstance(reply, Exception):
                raise reply
        return replies
