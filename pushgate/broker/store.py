"""The channel store: history, publishing and job records, in one Redis (see ``keys`` for the
key layout and ``scripts`` for the Lua that makes each write atomic).

Delivery guarantees, per operation (what a caller may rely on):

- ``publish``: the publication is appended to the channel's history and sent live in one atomic
  step, so every live message carries its offset and no subscriber sees it without history
  having it. At most once per call; with an idempotency key, at most once per key.
- ``replay`` / ``history``: every stored publication after a position, in order, and whether
  the history still covers that position (``recovered``); never a silent partial answer.
- ``create_job``: the job record and its ``queued`` event appear together, or not at all.
- ``publish_job_event``: the event is published and the job record follows it in one step;
  once a job has its terminal event nothing more is published for it (exactly one outcome),
  and nothing is published for a job without a record.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.commands.core import AsyncScript

from pushgate.broker import scripts
from pushgate.broker.keys import (
    channel_from_redis,
    history_key,
    idempotency_key,
    job_key,
    meta_key,
    redis_channel,
)
from pushgate.core import events
from pushgate.core.errors import PushgateError
from pushgate.core.events import Event, JobRecord, JobStatus, status_after
from pushgate.core.logs import channel_fields
from pushgate.core.settings import HistorySettings
from pushgate.core.wire import OffsetKey, Publication, job_channel, parse_offset

log = logging.getLogger(__name__)

# Publications per script call of ``publish_many``, channels per call of ``positions``: Redis
# runs a script to its end, so each call is kept short enough not to hold everyone else up (a
# gateway's position check reads every live channel: 20,000 in one call held Redis for tens of
# milliseconds).
PUBLISH_MANY_CHUNK = 500
POSITIONS_CHUNK = 500


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode()


def position_keys(channels: Sequence[str]) -> list[str]:
    return [key for channel in channels for key in (history_key(channel), meta_key(channel))]


def position_pairs(flat: list[bytes]) -> list[tuple[str, str]]:
    """``POSITIONS_SCRIPT``'s flat answer as (epoch, offset) per channel."""
    texts = [_text(value) for value in flat]
    return list(zip(texts[::2], texts[1::2], strict=True))


def decode_live(redis_name: str, message: str) -> Publication | None:
    """Turn a pub/sub message published by ``scripts.PUBLISH_SCRIPT`` into a Publication; None
    (logged) for one that pushgate did not publish there: a reader never stops for it."""
    channel = channel_from_redis(redis_name)
    try:
        offset, epoch, payload = message.split(" ", 2)
        parse_offset(offset), parse_offset(epoch)
    except (ValueError, PushgateError):
        log.warning(
            "dropped a pub/sub message pushgate did not publish", extra=channel_fields(channel)
        )
        return None
    return Publication(channel, offset, epoch, payload)


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    """How much of a channel's history is kept, and for how long."""

    size: int
    ttl: int


def job_history(settings: HistorySettings) -> HistoryPolicy:
    """Job channels keep their history as long as the job record itself."""
    return HistoryPolicy(size=settings.size, ttl=settings.job_ttl)


@dataclass(frozen=True, slots=True)
class Replay:
    """A channel read from a client's position: what it missed, if the history still has it."""

    recovered: bool
    publications: list[Publication]
    epoch: str  # current epoch, "" when the channel has no history
    offset: str  # newest offset, "" likewise


def covers(
    since_epoch: str | None,
    since: OffsetKey | None,
    epoch: str,
    trimmed: str,
) -> bool:
    """Whether the current history still holds everything after a client's position.

    ``since_epoch`` None means the client only knows its offset (SSE): offsets of the current
    history are never older than its epoch, so an older offset belongs to a lost history.
    """
    if not epoch:  # no history at all: fine only for a client that never saw any
        return not since_epoch and since is None
    if since_epoch is None:
        if since is None or since < parse_offset(epoch):
            return False
    elif since_epoch != epoch:
        return not since_epoch and not trimmed  # it saw nothing, and nothing was dropped since
    return not trimmed or (since is not None and since >= parse_offset(trimmed))


def _job_from_hash(request_id: str, raw: dict[str, str]) -> JobRecord:
    outcome = json.loads(raw["outcome"]) if "outcome" in raw else None
    status = JobStatus(raw.get("status", JobStatus.QUEUED))
    return JobRecord(
        request_id=request_id,
        url=raw.get("url", ""),
        status=status,
        owner=raw.get("owner", ""),
        result=outcome if status is JobStatus.DONE else None,
        error=outcome if status is JobStatus.FAILED else None,
    )


def _job_fields(event: Event) -> list[str]:
    """How an event changes the job hash: its status, and the outcome once it has one."""
    status = status_after(event)
    if status is None:
        return []
    fields = ["status", str(status)]
    if event["type"] == "result":
        outcome = {k: v for k, v in event.items() if k not in ("type", "request_id", "url")}
        fields += ["outcome", _json(outcome)]
    elif event["type"] == "failed":
        fields += ["outcome", _json(event["error"])]
    return fields


Entry = tuple[bytes, dict[bytes, bytes]]  # a stream entry: (id, fields)
ScriptCall = tuple[list[str], list[str | int]]  # a script call's KEYS and ARGV


def publish_many_call(chunk: Sequence[tuple[str, Any]], policy: HistoryPolicy) -> ScriptCall:
    """KEYS and ARGV of one ``scripts.PUBLISH_MANY_SCRIPT`` call publishing ``chunk``."""
    keys = [key for channel, _ in chunk for key in (history_key(channel), meta_key(channel))]
    args: list[str | int] = [policy.size, policy.ttl]
    for channel, data in chunk:
        args += [redis_channel(channel), _json(data)]
    return keys, args


@dataclass(frozen=True, slots=True)
class ChannelRead:
    """One atomic read of a channel: its meta fields (raw), entries, and newest entry."""

    epoch: bytes | None
    trimmed: bytes | None
    entries: list[Entry]
    newest: list[Entry]


class Backend:
    """Channel history, publishing and job records, on a Redis client that returns bytes."""

    def __init__(self, redis: Redis, *, jobs: HistoryPolicy) -> None:
        self._redis = redis
        self._commands: Redis | RedisCluster = redis  # single commands: any client has them
        self._setup(redis.register_script, scripts.channel_scripts("PUBLISH"), jobs)

    def _setup(
        self,
        register: Callable[[str], AsyncScript],
        channel: scripts.ChannelScripts,
        jobs: HistoryPolicy,
    ) -> None:
        """What every store holds: its job policy and scripts (``register`` binds one to its
        client; ``channel`` are the writes with the deployment's fan-out command)."""
        self._jobs = jobs
        self._publish = register(channel.publish)
        self._publish_many = register(channel.publish_many)
        self._publish_job_event = register(channel.publish_job_event)
        self._create_job = register(channel.create_job)
        self._positions = register(scripts.POSITIONS_SCRIPT)

    async def publish(
        self,
        channel: str,
        data: Any,
        policy: HistoryPolicy,
        *,
        idempotency: tuple[str, int] | None = None,
    ) -> tuple[str, str]:
        """Append ``data`` to the channel's history and publish it; returns (offset, epoch).

        ``idempotency`` is (key, seconds to remember it): a repeat returns the first answer.
        """
        keys = [history_key(channel), meta_key(channel)]
        args: list[str | int] = [redis_channel(channel), _json(data), policy.size, policy.ttl]
        if idempotency is not None:
            key, ttl = idempotency
            keys.append(idempotency_key(channel, key))
            args.append(ttl)
        offset, epoch = await self._publish(keys=keys, args=args)
        return _text(offset), _text(epoch)

    async def publish_many(
        self, items: Sequence[tuple[str, Any]], policy: HistoryPolicy
    ) -> list[tuple[str, str]]:
        """``publish`` for each (channel, data), in order, in one round trip per
        ``PUBLISH_MANY_CHUNK`` items; returns their (offset, epoch)."""
        positions: list[tuple[str, str]] = []
        for start in range(0, len(items), PUBLISH_MANY_CHUNK):
            keys, args = publish_many_call(items[start : start + PUBLISH_MANY_CHUNK], policy)
            replies = await self._publish_many(keys=keys, args=args)
            positions += [(_text(offset), _text(epoch)) for offset, epoch in replies]
        return positions

    async def publish_job_event(self, request_id: str, event: Event) -> str | None:
        """Publish a job's event; the job's record follows it (status, result, error).

        Returns its offset, or None when the job had already finished (or has no record) and
        nothing was published.
        """
        channel = job_channel(request_id)
        offset, _epoch = await self._publish_job_event(
            keys=[history_key(channel), meta_key(channel), job_key(request_id)],
            args=[
                redis_channel(channel), _json(event), self._jobs.size, self._jobs.ttl,
                *_job_fields(event),
            ],
        )  # fmt: skip
        return _text(offset) or None

    async def create_job(self, request_id: str, url: str, owner: str) -> tuple[bool, JobRecord]:
        """Create the job and publish ``queued``, unless it exists; returns (created, job)."""
        channel = job_channel(request_id)
        reply = await self._create_job(
            keys=[job_key(request_id), history_key(channel), meta_key(channel)],
            args=[
                redis_channel(channel),
                _json(events.queued(request_id, url)),
                self._jobs.size,
                self._jobs.ttl,
                url,
                owner,
                int(time.time() * 1000),
            ],
        )
        created, flat = bool(reply[0]), [_text(item) for item in reply[1:]]
        return created, _job_from_hash(request_id, dict(zip(flat[::2], flat[1::2], strict=True)))

    async def get_job(self, request_id: str) -> JobRecord | None:
        raw = await self._commands.hgetall(job_key(request_id))  # type: ignore[misc]
        if not raw:
            return None
        return _job_from_hash(request_id, {_text(k): _text(v) for k, v in raw.items()})

    async def history(self, channel: str, after: str | None = None) -> list[Publication]:
        """Every stored publication of ``channel`` after offset ``after`` (all when None)."""
        replay = await self.replay(channel, after=after)
        return replay.publications

    async def replay(
        self,
        channel: str,
        *,
        after: str | None = None,
        since_epoch: str | None = "",
        limit: int | None = None,
    ) -> Replay:
        """Publications after ``after`` (at most ``limit``), and whether that is all of them.

        ``since_epoch`` is the epoch the client's ``after`` belongs to ("" if it has none, None
        if it does not know it); ``recovered`` says whether the history still covers it.
        """
        read = await self._read(channel, "-" if not after else f"({after}", limit)
        epoch = _text(read.epoch) if read.newest else ""
        since = parse_offset(after) if after else None
        return Replay(
            recovered=covers(since_epoch, since, epoch, _text(read.trimmed)),
            publications=[self._publication(channel, epoch, entry) for entry in read.entries],
            epoch=epoch,
            offset=_text(read.newest[0][0]) if read.newest else "",
        )

    async def _read(
        self, channel: str, first: str, limit: int | None, *, newest_first: bool = False
    ) -> ChannelRead:
        """The channel's meta and entries from ``first`` on (or the newest ``limit``, newest
        first), in one atomic step."""
        key = history_key(channel)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hmget(meta_key(channel), ["epoch", "trimmed"])
            if newest_first:
                pipe.xrevrange(key, count=limit)
            else:
                pipe.xrange(key, min=first, max="+", count=limit)
            pipe.xrevrange(key, count=1)
            (epoch, trimmed), entries, newest = await pipe.execute()
        return ChannelRead(epoch, trimmed, entries, newest)

    async def position(self, channel: str) -> tuple[str, str]:
        """(epoch, newest offset) of ``channel``; ("", "") when it has no history."""
        (position,) = await self.positions([channel])
        return position

    async def positions(self, channels: Sequence[str]) -> list[tuple[str, str]]:
        """``position`` of each channel, in one script call per ``POSITIONS_CHUNK`` channels: a
        single command costs a fraction of a pipeline's per-command work in redis-py (whose
        script pipeline also asks ``SCRIPT EXISTS`` before every run); the script is loaded on
        ``NOSCRIPT``."""
        answers: list[tuple[str, str]] = []
        for start in range(0, len(channels), POSITIONS_CHUNK):
            keys = position_keys(channels[start : start + POSITIONS_CHUNK])
            answers += position_pairs(await self._positions(keys=keys))
        return answers

    async def latest(self, channel: str, limit: int) -> Replay:
        """The newest ``limit`` publications, oldest first."""
        read = await self._read(channel, "-", limit, newest_first=True)
        epoch = _text(read.epoch) if read.entries else ""
        publications = [
            self._publication(channel, epoch, entry) for entry in reversed(read.entries)
        ]
        newest = publications[-1].offset if publications else ""
        return Replay(recovered=True, publications=publications, epoch=epoch, offset=newest)

    @staticmethod
    def _publication(channel: str, epoch: str, entry: Entry) -> Publication:
        entry_id, fields = entry
        return Publication(channel, _text(entry_id), epoch, _text(fields[b"d"]))

    async def ping(self) -> bool:
        return bool(await self._commands.ping())
