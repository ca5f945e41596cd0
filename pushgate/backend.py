"""Everything pushgate keeps in Redis, behind one narrow interface.

Per channel ``C`` (hash tag ``{C}`` keeps all of a channel's keys in one cluster slot):

- ``pushgate:{C}:history``: a capped, expiring Stream holding the channel's events; an event's
  stream id is its ``offset``.
- ``pushgate:{C}:epoch``: the id that opened the current history; it changes whenever the
  history was lost (expired, Redis restarted), so a client can tell "nothing new" from "gone".
- ``pushgate:{C}``: the pub/sub channel; each message is ``"<offset> <epoch> <event JSON>"``.
- ``pushgate:{job:<id>}:job``: a hash with the job's url, status and outcome.

Appending to the history and publishing happen in one Lua script, so a live message always
carries its stream id, and a reader can splice history and live events without gaps.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from pushgate import events
from pushgate.events import Event
from pushgate.wire import Publication, job_channel

PREFIX = "pushgate:"

_PUBLISH_FUNCTION = """
local function publish(stream, epoch_key, channel, payload, maxlen, ttl)
  local fresh = redis.call('EXISTS', stream) == 0
  local id = redis.call('XADD', stream, 'MAXLEN', '=', maxlen, '*', 'd', payload)
  local epoch = redis.call('GET', epoch_key)
  if fresh or not epoch then
    epoch = id
    redis.call('SET', epoch_key, epoch)
  end
  redis.call('EXPIRE', stream, ttl)
  redis.call('EXPIRE', epoch_key, ttl)
  redis.call('PUBLISH', channel, id .. ' ' .. epoch .. ' ' .. payload)
  return {id, epoch}
end
"""

# KEYS: history, epoch[, job]  ARGV: channel, payload, maxlen, ttl[, field, value ...]
# The job hash is updated only while it exists, so a late event cannot resurrect an expired job.
_PUBLISH_SCRIPT = (
    _PUBLISH_FUNCTION
    + """
local r = publish(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
if KEYS[3] and #ARGV > 4 and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HSET', KEYS[3], unpack(ARGV, 5))
end
return r
"""
)

# KEYS: job, history, epoch  ARGV: channel, queued payload, maxlen, ttl, url, created_ms
# Returns {created (0/1), HGETALL of the job}. Creation and the `queued` event are one step,
# so a job never exists without its first event.
_CREATE_JOB_SCRIPT = (
    _PUBLISH_FUNCTION
    + """
local created = 0
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'url', ARGV[5], 'status', 'queued', 'created_ms', ARGV[6])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  publish(KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
  created = 1
end
local job = redis.call('HGETALL', KEYS[1])
table.insert(job, 1, created)
return job
"""
)


def redis_channel(channel: str) -> str:
    return f"{PREFIX}{{{channel}}}"


def channel_from_redis(name: str) -> str:
    return name[len(PREFIX) + 1 : -1]


def _history_key(channel: str) -> str:
    return f"{redis_channel(channel)}:history"


def _epoch_key(channel: str) -> str:
    return f"{redis_channel(channel)}:epoch"


def _job_key(request_id: str) -> str:
    return f"{redis_channel(job_channel(request_id))}:job"


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _text(value: bytes) -> str:
    return value.decode()


def decode_live(redis_name: str, message: str) -> Publication:
    """Turn a pub/sub message published by the scripts above into a Publication."""
    offset, epoch, payload = message.split(" ", 2)
    return Publication(channel_from_redis(redis_name), offset, epoch, payload)


@dataclass(frozen=True, slots=True)
class JobRecord:
    request_id: str
    url: str
    status: str
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


def _job_from_hash(request_id: str, raw: dict[str, str]) -> JobRecord:
    outcome = json.loads(raw["outcome"]) if "outcome" in raw else None
    status = raw.get("status", "queued")
    return JobRecord(
        request_id=request_id,
        url=raw.get("url", ""),
        status=status,
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

    def __init__(self, redis: Redis, *, history_size: int, ttl_seconds: int) -> None:
        self._redis = redis
        self._history_size = history_size
        self._ttl = ttl_seconds
        self._publish = redis.register_script(_PUBLISH_SCRIPT)
        self._create_job = redis.register_script(_CREATE_JOB_SCRIPT)

    async def publish(self, channel: str, event: Event, *, job_id: str | None = None) -> str:
        """Append ``event`` to the channel's history and publish it live; returns its offset.

        With ``job_id``, the job's record follows the event (status, result, error).
        """
        keys = [_history_key(channel), _epoch_key(channel)]
        args: list[str | int] = [redis_channel(channel), _json(event)]
        args += [self._history_size, self._ttl]
        if job_id is not None:
            keys.append(_job_key(job_id))
            args += _job_fields(event)
        offset, _epoch = await self._publish(keys=keys, args=args)
        return _text(offset)

    async def publish_job_event(self, request_id: str, event: Event) -> str:
        return await self.publish(job_channel(request_id), event, job_id=request_id)

    async def create_job(self, request_id: str, url: str) -> tuple[bool, JobRecord]:
        """Create the job and publish ``queued``, unless it exists; returns (created, job)."""
        channel = job_channel(request_id)
        reply = await self._create_job(
            keys=[_job_key(request_id), _history_key(channel), _epoch_key(channel)],
            args=[
                redis_channel(channel),
                _json(events.queued(request_id, url)),
                self._history_size,
                self._ttl,
                url,
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
        """Every stored event of ``channel`` after offset ``after`` (all of them when None)."""
        key = _history_key(channel)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(_epoch_key(channel))
            pipe.xrange(key, min="-" if after is None else f"({after}", max="+")
            epoch_raw, entries = await pipe.execute()
        epoch = _text(epoch_raw) if epoch_raw is not None else ""
        return [
            Publication(channel, _text(entry_id), epoch, _text(fields[b"d"]))
            for entry_id, fields in entries
        ]

    async def ping(self) -> bool:
        return bool(await self._redis.ping())
