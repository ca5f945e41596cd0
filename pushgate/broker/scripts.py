"""The Lua scripts behind every channel write and every rate-limit check: each runs as one
atomic step in Redis.

The shared ``publish`` function appends to a channel's capped Stream, keeps its meta hash (epoch,
trimmed mark) and PUBLISHes ``"<offset> <epoch> <json>"``, so a live message always carries its
stream id. MULTI is atomic too but cannot put the XADD id into the PUBLISH payload.

``channel_scripts(command)`` gives the channel writes with the live fan-out command of one
deployment: ``PUBLISH`` on a single Redis (the module's ``PUBLISH_SCRIPT`` etc.), ``SPUBLISH``
on a Redis Cluster, where a sharded publication reaches only the node owning the channel's slot
(the channel name carries the channel's hash tag, so it is the slot of the script's keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PublishCommand = Literal["PUBLISH", "SPUBLISH"]

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
  redis.call('$PUBLISH', channel, id .. ' ' .. epoch .. ' ' .. payload)
  return {id, epoch}
end
"""

# KEYS: history, meta[, idempotency]  ARGV: channel, payload, maxlen, ttl[, idempotency ttl]
# A repeated idempotency key answers the first publish's {offset, epoch} and stores nothing.
_PUBLISH_BODY = """
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

# KEYS: history1, meta1, history2, meta2, ...  ARGV: maxlen, ttl, channel1, payload1, ...
# Many publications in one call. On a cluster every call's keys must share one slot.
_PUBLISH_MANY_BODY = """
local positions = {}
for i = 1, #KEYS / 2 do
  positions[i] = publish(KEYS[2 * i - 1], KEYS[2 * i], ARGV[2 * i + 1], ARGV[2 * i + 2],
                         ARGV[1], ARGV[2])
end
return positions
"""

# KEYS: history, meta, job  ARGV: channel, payload, maxlen, ttl, field, value[, ...]
# Returns {offset, epoch}, or {"", ""} when the job has finished: nothing follows a terminal
# event, so a re-run of a job whose outcome is out cannot publish a second one. The job hash is
# updated only while it exists (it always has a status), so a late event cannot resurrect it.
# 'done' and 'failed' are the finished JobStatus values.
_PUBLISH_JOB_EVENT_BODY = """
local status = redis.call('HGET', KEYS[3], 'status')
-- No record: the job is unknown here (a failover lost it, its submitter was refused and
-- retries); an event now would come before its `queued`.
if not status or status == 'done' or status == 'failed' then
  return {'', ''}
end
local r = publish(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
if #ARGV > 4 and status then
  redis.call('HSET', KEYS[3], unpack(ARGV, 5))
end
return r
"""

# KEYS: job, history, meta  ARGV: channel, queued payload, maxlen, ttl, url, owner, created_ms
# Returns {created (0/1), HGETALL of the job}. Creation and the `queued` event are one step,
# so a job never exists without its first event.
_CREATE_JOB_BODY = """
local created = 0
if redis.call('EXISTS', KEYS[1]) == 0 then
  -- 'queued' is JobStatus.QUEUED
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


@dataclass(frozen=True, slots=True)
class ChannelScripts:
    """The channel writes, each with the ``publish`` function fanning out by one command."""

    publish: str
    publish_many: str
    publish_job_event: str
    create_job: str


def channel_scripts(command: PublishCommand) -> ChannelScripts:
    function = _PUBLISH_FUNCTION.replace("$PUBLISH", command)
    return ChannelScripts(
        publish=function + _PUBLISH_BODY,
        publish_many=function + _PUBLISH_MANY_BODY,
        publish_job_event=function + _PUBLISH_JOB_EVENT_BODY,
        create_job=function + _CREATE_JOB_BODY,
    )


_SINGLE = channel_scripts("PUBLISH")
PUBLISH_SCRIPT = _SINGLE.publish
PUBLISH_MANY_SCRIPT = _SINGLE.publish_many
PUBLISH_JOB_EVENT_SCRIPT = _SINGLE.publish_job_event
CREATE_JOB_SCRIPT = _SINGLE.create_job


# KEYS: history, meta of one channel after another. Each channel's epoch and newest offset, ""
# and "" when it has no history (where a new subscriber starts), in one flat list: a connect
# storm's reads of one loop turn in one call, each channel's pair read in one step.
POSITIONS_SCRIPT = """
local out = {}
for i = 1, #KEYS, 2 do
  local newest = redis.call('XREVRANGE', KEYS[i], '+', '-', 'COUNT', 1)
  if #newest == 0 then
    out[#out + 1] = ''
    out[#out + 1] = ''
  else
    out[#out + 1] = redis.call('HGET', KEYS[i + 1], 'epoch') or ''
    out[#out + 1] = newest[1][1]
  end
end
return out
"""


# KEYS: history, meta  ARGV: first ("-" or "(<offset>"), count ("" for all), newest first (0/1)
# Returns {epoch, trimmed, entries, newest entry}: a channel read in one step where MULTI is not
# at hand (redis-py's cluster client has no transactions). Entries are {id, {field, value}}.
READ_SCRIPT = """
local meta = redis.call('HMGET', KEYS[2], 'epoch', 'trimmed')
local count = {}
if ARGV[2] ~= '' then
  count = {'COUNT', ARGV[2]}
end
local entries
if ARGV[3] == '1' then
  entries = redis.call('XREVRANGE', KEYS[1], '+', '-', unpack(count))
else
  entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', unpack(count))
end
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
return {meta[1], meta[2], entries, newest}
"""

# KEYS: bucket  ARGV: rate (tokens per second), burst, cost  ->  {allowed (0/1), retry_after_ms}
# Refills by the time elapsed on Redis's own clock, so gateways with skewed clocks share one
# budget. A bucket expires when it would be full again: an idle one costs nothing. A refused
# call changes nothing, so hammering does not push the retry time further out.
TOKEN_BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens, ts = burst, now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
if tokens < cost then
  return {0, math.ceil((cost - tokens) * 1000 / rate)}
end
tokens = tokens - cost
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((burst - tokens) * 1000 / rate)))
return {1, 0}
"""
