"""The broker plane over N standalone Redis servers (``PUSHGATE_BROKER_URLS``), one per shard.

Each channel lives on exactly one shard, the one ``pushgate.core.sharding.shard_of`` names: its
history, meta, idempotency keys, job record (for a job channel) and pub/sub. So every atomic
step of ``Backend`` (one Lua call: append and publish, create a job and publish ``queued``, an
event and the job record) stays on one Redis and stays atomic. ``ShardedStore`` has
``Backend``'s public API and routes each call to the channel's shard; ``publish_many`` and
``positions`` split their items by shard and run each shard's part concurrently (one chunked
script run, or one pipeline, per shard), answers in the callers' order. Without broker URLs the
one shard is ``PUSHGATE_REDIS_URL``'s client: exactly the single-Redis layout. With a
``redis+cluster://`` URL the one shard is the whole Redis Cluster (``ClusterStore``, which routes
each call to its slot's master and splits batches per slot itself).

A shard that is down fails only the calls for its channels; nothing is retried here.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.asyncio import Redis, RedisCluster

from pushgate.broker import jobqueue
from pushgate.broker.cluster_store import ClusterStore, cluster_client
from pushgate.broker.store import Backend, HistoryPolicy, Replay, job_history
from pushgate.core.events import Event, JobRecord
from pushgate.core.settings import Settings, redacted_url
from pushgate.core.sharding import shard_of
from pushgate.core.wire import Publication, job_channel

T = TypeVar("T")
A = TypeVar("A")


@dataclass(frozen=True, slots=True)
class Shard:
    """One Redis of the broker plane: its place in ``PUSHGATE_BROKER_URLS`` is its index."""

    index: int
    url: str  # as configured (may hold a password)
    backend: Backend
    redis: Redis | RedisCluster

    @property
    def address(self) -> str:
        """``url`` without its password, for probes, status and logs."""
        return redacted_url(self.url)


class ShardedStore:
    """``Backend``'s API over every shard, each call on the shard of its channel."""

    def __init__(self, shards: Sequence[Shard], *, owned: bool) -> None:
        if not shards:
            raise ValueError("a broker plane needs at least one shard")
        self.shards = tuple(shards)
        self._owned = owned  # whether the clients are ours to close

    @classmethod
    def connect(
        cls, settings: Settings, default: Redis, *, socket_timeout: float | None = None
    ) -> ShardedStore:
        """One client per broker URL; without any, the one shard on ``default`` (the client of
        ``PUSHGATE_REDIS_URL``, which the caller closes)."""
        jobs = job_history(settings.history)
        if settings.cluster_url is not None:
            return cls.on_cluster(settings.cluster_url, jobs, socket_timeout=socket_timeout)
        if not settings.broker_urls:
            return cls.over([(settings.redis_url, default)], jobs, owned=False)
        clients = [
            (url, jobqueue.connect(url, socket_timeout=socket_timeout))
            for url in settings.broker_urls
        ]
        return cls.over(clients, jobs, owned=True)

    @classmethod
    def over(
        cls, clients: Sequence[tuple[str, Redis]], jobs: HistoryPolicy, *, owned: bool
    ) -> ShardedStore:
        """A shard per (URL, client), in shard order; ``owned``: ``aclose`` closes the clients."""
        shards = [
            Shard(index, url, Backend(redis, jobs=jobs), redis)
            for index, (url, redis) in enumerate(clients)
        ]
        return cls(shards, owned=owned)

    @classmethod
    def on_cluster(
        cls, url: str, jobs: HistoryPolicy, *, socket_timeout: float | None = None
    ) -> ShardedStore:
        """The whole Redis Cluster of ``url`` as the one shard (``cluster`` is its store)."""
        client = cluster_client(url, socket_timeout=socket_timeout)
        return cls([Shard(0, url, ClusterStore(client, jobs=jobs), client)], owned=True)

    @property
    def cluster(self) -> ClusterStore | None:
        """The cluster's store when the broker plane is a Redis Cluster."""
        backend = self.shards[0].backend
        return backend if isinstance(backend, ClusterStore) else None

    async def aclose(self) -> None:
        if self._owned:
            for shard in self.shards:
                if isinstance(shard.redis, Redis):
                    await shard.redis.aclose(close_connection_pool=True)
                else:
                    await shard.redis.aclose()

    def shard_of(self, channel: str) -> int:
        return shard_of(channel, len(self.shards))

    def _on(self, channel: str) -> Backend:
        return self.shards[self.shard_of(channel)].backend

    async def publish(
        self,
        channel: str,
        data: Any,
        policy: HistoryPolicy,
        *,
        idempotency: tuple[str, int] | None = None,
    ) -> tuple[str, str]:
        return await self._on(channel).publish(channel, data, policy, idempotency=idempotency)

    async def publish_many(
        self, items: Sequence[tuple[str, Any]], policy: HistoryPolicy
    ) -> list[tuple[str, str]]:
        """``Backend.publish_many`` on each shard for its items, the shards concurrently; each
        channel's publications keep their order. When one shard fails, the others' may be in."""
        return await self._per_shard(
            items,
            lambda item: item[0],
            lambda backend, part: backend.publish_many(part, policy),
        )

    async def publish_job_event(self, request_id: str, event: Event) -> str | None:
        return await self._on(job_channel(request_id)).publish_job_event(request_id, event)

    async def create_job(self, request_id: str, url: str, owner: str) -> tuple[bool, JobRecord]:
        return await self._on(job_channel(request_id)).create_job(request_id, url, owner)

    async def get_job(self, request_id: str) -> JobRecord | None:
        return await self._on(job_channel(request_id)).get_job(request_id)

    async def history(self, channel: str, after: str | None = None) -> list[Publication]:
        return await self._on(channel).history(channel, after=after)

    async def replay(
        self,
        channel: str,
        *,
        after: str | None = None,
        since_epoch: str | None = "",
        limit: int | None = None,
    ) -> Replay:
        backend = self._on(channel)
        return await backend.replay(channel, after=after, since_epoch=since_epoch, limit=limit)

    async def position(self, channel: str) -> tuple[str, str]:
        return await self._on(channel).position(channel)

    async def positions(self, channels: Sequence[str]) -> list[tuple[str, str]]:
        """``Backend.positions`` on each shard for its channels, the shards concurrently."""
        return await self._per_shard(
            channels, lambda channel: channel, lambda backend, part: backend.positions(part)
        )

    async def latest(self, channel: str, limit: int) -> Replay:
        return await self._on(channel).latest(channel, limit)

    async def ping(self) -> bool:
        """Whether every shard answers (raises what the first one that does not raised)."""
        answers = await asyncio.gather(*(shard.backend.ping() for shard in self.shards))
        return all(answers)

    async def _per_shard(
        self,
        items: Sequence[A],
        channel: Callable[[A], str],
        call: Callable[[Backend, list[A]], Awaitable[list[T]]],
    ) -> list[T]:
        """``call`` once per shard with that shard's items, concurrently; the answers put back
        in the order of ``items``."""
        if len(self.shards) == 1:  # no tasks, no reordering
            return await call(self.shards[0].backend, list(items))
        places: defaultdict[int, list[int]] = defaultdict(list)
        for place, item in enumerate(items):
            places[self.shard_of(channel(item))].append(place)
        answers = await asyncio.gather(
            *(
                call(self.shards[index].backend, [items[place] for place in group])
                for index, group in places.items()
            ),
            return_exceptions=True,  # every shard's part settles before an error is raised
        )
        ordered: list[T | None] = [None] * len(items)
        for group, answered in zip(places.values(), answers, strict=True):
            if isinstance(answered, BaseException):
                raise answered
            for place, answer in zip(group, answered, strict=True):
                ordered[place] = answer
        return [answer for answer in ordered if answer is not None]
