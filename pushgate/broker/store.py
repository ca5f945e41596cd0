"""Everything pushgate keeps in Redis, behind one narrow interface.

Per channel ``C`` (hash tag ``{C}`` keeps all of a channel's keys in one cluster slot):

- ``pushgate:{C}:history``: a capped, expiring Stream of the channel's publications; a
  publication's stream id is its ``offset``.
- ``pushgate:{C}:meta``: a hash with the channel's ``epoch`` (the id that opened the current
  history: it changes whenever the history was lost, as it expired or Redis restarted) and
  ``trimmed`` (the newest offset the cap has dropped), so a resuming client learns whether the
  history still covers its position.
- ``pushgate:{C}``: the pub/sub channel; each message is ``"<offset> <epoch> <JSON>"``.
- ``pushgate:{C}:idem:<key>``: the answer to an idempotent publish, for retries.
- ``pushgate:{job:<id>}:job``: a hash with the job's url, owner, status and outcome.

Appending to the history and publishing happen in one Lua script, so a live message always
carries its stream id, and a reader can splice history and live events without gaps.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from pushgate.core import events
from pushgate.core.events import Event
from pushgate.core.settings import Settings
from pushgate.core.wire import OffsetKey, Publication, job_channel, parse_offset

PREFIX = "pushgate:"
# Publications per script call of ``publish_many``: Redis runs a script to its end, so each call
# is kept short enough not to hold everyone else up.
PUBLISH_MANY_CHUNK = 500

_PUBLISH_FUNCTION = """
local function publish(stream, meta, channel, payload, maxlen, ttl)
  maxlen = tonumber(maxlen)
  local length = redis.call('XLEN', stream)
  local epoch = length > 0 and redis.call('HGET', meta, 'epoch')
  if epoch and length >= maxlen then
    local gone = redis.call('XRANGE', stream, '-', '+', 'COUNT', length - maxlen + 1)
    redis.call('HSET', meta, 'trimmed', gone[#gone][1])
  end
  local id = redis.call('XADD', stream, 'MAXLEN', '=', maxlen, '*', 'd', payload)
  if not epoch then
    epoch = id
    redis.call('DEL', meta)
    redis.call('HSET', meta, 'epoch', epoch)
  end
  redis.call('EXPIRE', stream, ttl)
  redis.call('EXPIRE', meta, ttl)
  redis.call('PUBLISH', channel, id .. ' ' .. epoch .. ' ' .. payload)
  return {id, epoch}
end
"""

# KEYS: history, meta[, idempotency]  ARGV: channel, payload, maxlen, ttl[, idempotency ttl]
# A repeated idempotency key answers the first publish's {offset, epoch} and stores nothing.
_PUBLISH_SCRIPT = (
    _PUBLISH_FUNCTION
    + """
if KEYS[3] then
  local previous = redis.call('GET', KEYS[3])
  if previous then
    local space = string.find(previous, ' ')
    return {string.sub(previous, 1, space - 1), string.sub(previous, space + 1)}
  end
end
local r = publish(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
if KEYS[3] then
  redis.call('SET', KEYS[3], r[1] .. ' ' .. r[2], 'EX', ARGV[5])
end
return r
"""
)

# KEYS: history1, meta1, history2, meta2, ...  ARGV: maxlen, ttl, channel1, payload1, ...
# Many publications in one call. Its keys span hash slots, so it is for a single Redis only.
_PUBLISH_MANY_SCRIPT = (
    _PUBLISH_FUNCTION
    + """
local positions = {}
for i = 1, #KEYS / 2 do
  positions[i] = publish(KEYS[2 * i - 1], KEYS[2 * i], ARGV[2 * i + 1], ARGV[2 * i + 2],
                         ARGV[1], ARGV[2])
end
return positions
"""
)

# KEYS: history, meta, job  ARGV: channel, payload, maxlen, ttl, field, value[, ...]
# Returns {offset, epoch}, or {"", ""} when the job has finished: nothing follows a terminal
# event, so a re-run of a job whose outcome is out cannot publish a second one. The job hash is
# updated only while it exists (it always has a status), so a late event cannot resurrect it.
_PUBLISH_JOB_EVENT_SCRIPT = (
    _PUBLISH_FUNCTION
    + """
local status = redis.call('HGET', KEYS[3], 'status')
if status == 'done' or status == 'failed' then
  return {'', ''}
end
local r = publish(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
if #ARGV > 4 and status then
  redis.call('HSET', KEYS[3], unpack(ARGV, 5))
end
return r
"""
)

# KEYS: job, history, meta  ARGV: channel, queued payload, maxlen, ttl, url, owner, created_ms
# Returns {created (0/1), HGETALL of the job}. Creation and the `queued` event are one step,
# so a job never exists without its first event.
_CREATE_JOB_SCRIPT = (
    _PUBLISH_FUNCTION
    + """
local created = 0
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'url', ARGV[5], 'owner', ARGV[6], 'status', 'queued',
             'created_ms', ARGV[7])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  publish(KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
  created = 1
end
local job = redis.call('HGETALL', KEYS[1])
table.insert(job, 1, created)
return job
"""
)


# KEYS: history, meta. The channel's (epoch, newest offset), "" and "" when it has no history:
# where a new subscriber starts, read in one step.
_POSITION_SCRIPT = """
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #newest == 0 then
  return {'', ''}
end
return {redis.call('HGET', KEYS[2], 'epoch') or '', newest[1][1]}
"""


def redis_channel(channel: str) -> str:
    return f"{PREFIX}{{{channel}}}"


def channel_from_redis(name: str) -> str:
    return name[len(PREFIX) + 1 : -1]


def _history_key(channel: str) -> str:
    return f"{redis_channel(channel)}:history"


def _meta_key(channel: str) -> str:
    return f"{redis_channel(channel)}:meta"


def _job_key(request_id: str) -> str:
    return f"{redis_channel(job_channel(request_id))}:job"


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode()


def decode_live(redis_name: str, message: str) -> Publication:
    """Turn a pub/sub message published by the scripts above into a Publication."""
    offset, epoch, payload = message.split(" ", 2)
    return Publication(channel_from_redis(redis_name), offset, epoch, payload)


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    """How much of a channel's history is kept, and for how long."""

    size: int
    ttl: int


def job_history(settings: Settings) -> HistoryPolicy:
    """Job channels keep their history as long as the job record itself."""
    return HistoryPolicy(size=settings.history_size, ttl=settings.job_ttl_seconds)


@dataclass(frozen=True, slots=True)
class JobRecord:
    request_id: str
    url: str
    status: str
    owner: str = ""
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"request_id": self.request_id, "url": self.url}
        body["status"] = self.status
        if self.result is not None:
            body["result"] = self.result
        if self.error is not None:
            body["error"] = self.error
        return body


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
    status = raw.get("status", "queued")
    return JobRecord(
        request_id=request_id,
        url=raw.get("url", ""),
        status=status,
        owner=raw.get("owner", ""),
        result=outcome if status == "done" else None,
        error=outcome if status == "failed" else None,
    )


def _job_fields(event: Event) -> list[str]:
    """How an event changes the job hash: its status, and the outcome once it has one."""
    kind = event["type"]
    if kind == "started":
        return ["status", "running"]
    if kind == "result":
        outcome = {k: v for k, v in event.items() if k not in ("type", "request_id", "url")}
        return ["status", "done", "outcome", _json(outcome)]
    if kind == "failed":
        return ["status", "failed", "outcome", _json(event["error"])]
    return []


class Backend:
    """Channel history, publishing and job records, on a Redis client that returns bytes."""

    def __init__(self, redis: Redis, *, jobs: HistoryPolicy) -> None:
        self._redis = redis
        self._jobs = jobs
        self._publish = redis.register_script(_PUBLISH_SCRIPT)
        self._publish_many = redis.register_script(_PUBLISH_MANY_SCRIPT)
        self._publish_job_event = redis.register_script(_PUBLISH_JOB_EVENT_SCRIPT)
        self._create_job = redis.register_script(_CREATE_JOB_SCRIPT)
        self._position = redis.register_script(_POSITION_SCRIPT)

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
        keys = [_history_key(channel), _meta_key(channel)]
        args: list[str | int] = [redis_channel(channel), _json(data), policy.size, policy.ttl]
        if idempotency is not None:
            key, ttl = idempotency
            keys.append(f"{redis_channel(channel)}:idem:{key}")
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
            chunk = items[start : start + PUBLISH_MANY_CHUNK]
            keys = [
                key for channel, _ in chunk for key in (_history_key(channel), _meta_key(channel))
            ]
            args: list[str | int] = [policy.size, policy.ttl]
            for channel, data in chunk:
                args += [redis_channel(channel), _json(data)]
            replies = await self._publish_many(keys=keys, args=args)
            positions += [(_text(offset), _text(epoch)) for offset, epoch in replies]
        return positions

    async def publish_job_event(self, request_id: str, event: Event) -> str | None:
        """Publish a job's event; the job's record follows it (status, result, error).

        Returns its offset, or None when the job had already finished and nothing was published.
        """
        channel = job_channel(request_id)
        offset, _epoch = await self._publish_job_event(
            keys=[_history_key(channel), _meta_key(channel), _job_key(request_id)],
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
            keys=[_job_key(request_id), _history_key(channel), _meta_key(channel)],
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
        raw = await self._redis.hgetall(_job_key(request_id))  # type: ignore[misc]
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
        key = _history_key(channel)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hmget(_meta_key(channel), ["epoch", "trimmed"])
            pipe.xrange(key, min="-" if not after else f"({after}", max="+", count=limit)
            pipe.xrevrange(key, count=1)
            (epoch_raw, trimmed_raw), entries, newest = await pipe.execute()
        epoch = _text(epoch_raw) if newest else ""
        since = parse_offset(after) if after else None
        return Replay(
            recovered=covers(since_epoch, since, epoch, _text(trimmed_raw)),
            publications=[self._publication(channel, epoch, entry) for entry in entries],
            epoch=epoch,
            offset=_text(newest[0][0]) if newest else "",
        )

    async def position(self, channel: str) -> tuple[str, str]:
        """(epoch, newest offset) of ``channel``; ("", "") when it has no history."""
        epoch, offset = await self._position(keys=[_history_key(channel), _meta_key(channel)])
        return _text(epoch), _text(offset)

    async def latest(self, channel: str, limit: int) -> Replay:
        """The newest ``limit`` publications, oldest first."""
        key = _history_key(channel)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hget(_meta_key(channel), "epoch")
            pipe.xrevrange(key, count=limit)
            epoch_raw, entries = await pipe.execute()
        epoch = _text(epoch_raw) if entries else ""
        publications = [self._publication(channel, epoch, entry) for entry in reversed(entries)]
        newest = publications[-1].offset if publications else ""
        return Replay(recovered=True, publications=publications, epoch=epoch, offset=newest)

    @staticmethod
    def _publication(
        channel: str, epoch: str, entry: tuple[bytes, dict[bytes, bytes]]
    ) -> Publication:
        entry_id, fields = entry
        return Publication(channel, _text(entry_id), epoch, _text(fields[b"d"]))

    async def ping(self) -> bool:
        return bool(await self._redis.ping())
