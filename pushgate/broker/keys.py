"""Every Redis key and channel name pushgate uses, in one place (as arq keeps its own names).

Per channel ``C`` the hash tag ``{C}`` keeps all of a channel's keys in one cluster slot:

- ``pushgate:{C}``: the pub/sub channel; each message is ``"<offset> <epoch> <JSON>"``.
- ``pushgate:{C}:history``: a capped, expiring Stream of the channel's publications; a
  publication's stream id is its ``offset``.
- ``pushgate:{C}:meta``: a hash with the channel's ``epoch`` (the id that opened the current
  history: it changes whenever the history was lost, as it expired or Redis restarted) and
  ``trimmed`` (the newest offset the cap has dropped), so a resuming client learns whether the
  history still covers its position.
- ``pushgate:{C}:idem:<key>``: the answer to an idempotent publish, for retries.
- ``pushgate:{job:<id>}:job``: a hash with the job's url, owner, status and outcome.

Outside channels: ``pushgate:control`` keeps a gateway's pub/sub connection subscribed when no
client channel is, and ``pushgate:queue`` is the arq queue.

Rate limits: ``pushgate:{rate:<budget>:<who>}`` is a hash (``tokens``, ``ts``) holding one token
bucket, e.g. ``pushgate:{rate:submit:ip:10.0.0.7}``; ``<who>`` is an address or a sha256 digest
(``user:<hex>``, ``key:<hex>``), never a token or an API key. It expires once it would be full.
"""

from __future__ import annotations

from pushgate.core.wire import job_channel

PREFIX = "pushgate:"
CONTROL_CHANNEL = f"{PREFIX}control"
QUEUE_NAME = f"{PREFIX}queue"


def redis_channel(channel: str) -> str:
    return f"{PREFIX}{{{channel}}}"


def channel_from_redis(name: str) -> str:
    return name[len(PREFIX) + 1 : -1]


def history_key(channel: str) -> str:
    return f"{redis_channel(channel)}:history"


def meta_key(channel: str) -> str:
    return f"{redis_channel(channel)}:meta"


def idempotency_key(channel: str, key: str) -> str:
    return f"{redis_channel(channel)}:idem:{key}"


def job_key(request_id: str) -> str:
    return f"{redis_channel(job_channel(request_id))}:job"


def rate_bucket_key(budget: str, who: str) -> str:
    return f"{PREFIX}{{rate:{budget}:{who}}}"
