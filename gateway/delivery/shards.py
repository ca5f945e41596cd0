"""The gateway's hubs, one per broker shard, behind the one ``Hub`` API the endpoints call.

Each shard has its own pub/sub connection, reader task and position check (``Hub``), and each
channel is served by the hub of the shard it lives on (``ShardedStore.shard_of``, the same
hash). So a shard going down is, for its channels, exactly what a whole-Redis outage was before
(``subscribe`` answers unavailable at once, live channels are caught up or told when it
returns), and the channels of every other shard are not touched by it.

On a Redis Cluster the one shard is the whole cluster, read by one hub through ``ClusterPubSub``
(a connection per master): a master going down cuts off its channels only, in that hub.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial

from redis.asyncio import Redis

from gateway.delivery.direct import DirectWrites
from gateway.delivery.hub import Hub, Subscriber
from gateway.metrics import GatewayMetrics
from pushgate.broker import jobqueue
from pushgate.broker.cluster_pubsub import ClusterPubSub
from pushgate.broker.pubsub import PubSubConnection
from pushgate.broker.shards import ShardedStore
from pushgate.core.settings import Settings


class ShardedHub:
    """``Hub``'s API, each call on the hub of the channel's shard."""

    def __init__(
        self, hubs: Sequence[Hub], store: ShardedStore, cluster: ClusterPubSub | None = None
    ) -> None:
        assert len(hubs) == len(store.shards)
        self.hubs = tuple(hubs)
        self._store = store
        self.cluster = cluster  # the one hub's reader when the broker plane is a cluster
        self.writes = hubs[0].writes  # one for all (see Hub)

    @classmethod
    def build(
        cls, settings: Settings, store: ShardedStore, metrics: GatewayMetrics | None
    ) -> ShardedHub:
        """A hub per shard of ``store``, each on a pub/sub connection of its own (on a cluster,
        one hub on a ``ClusterPubSub``)."""
        writes = DirectWrites()
        hub = partial(
            Hub,
            redis_timeout=settings.redis_timeout,
            position_check=settings.position_check_seconds,
            metrics=metrics,
            writes=writes,
        )
        if store.cluster is not None:
            [shard] = store.shards
            cluster = ClusterPubSub(shard.url, ping_interval=settings.pubsub_ping_interval)
            return cls([hub(cluster, store.cluster)], store, cluster)
        hubs = []
        for shard in store.shards:
            assert isinstance(shard.redis, Redis)  # standalone shards
            connection = PubSubConnection(
                shard.url,
                ping_interval=settings.pubsub_ping_interval,
                # Behind Sentinel: the shard's client reads from the master the reader found.
                on_master=partial(jobqueue.follow_master, shard.redis),
            )
            hubs.append(hub(connection, shard.backend, shard=shard.index))
        return cls(hubs, store)

    def _hub(self, channel: str) -> Hub:
        return self.hubs[self._store.shard_of(channel)]

    async def start(self) -> None:
        for hub in self.hubs:
            await hub.start()

    async def stop(self) -> None:
        await asyncio.gather(*(hub.stop() for hub in self.hubs))

    @property
    def connected(self) -> bool:
        """Whether the pub/sub connection of every shard (every cluster master) is up."""
        masters = self.cluster.masters() if self.cluster is not None else []
        return all(hub.connected for hub in self.hubs) and all(up for _, up in masters)

    @property
    def channel_count(self) -> int:
        return sum(hub.channel_count for hub in self.hubs)

    @property
    def subscriber_count(self) -> int:
        return sum(hub.subscriber_count for hub in self.hubs)

    async def subscribe(self, channel: str, subscriber: Subscriber) -> None:
        await self._hub(channel).subscribe(channel, subscriber)

    def attach_at_position(self, channel: str, subscriber: Subscriber) -> tuple[str, str] | None:
        return self._hub(channel).attach_at_position(channel, subscriber)

    def note_position(self, channel: str, epoch: str, offset: str) -> None:
        self._hub(channel).note_position(channel, epoch, offset)

    def unsubscribe(self, channel: str, subscriber: Subscriber) -> None:
        self._hub(channel).unsubscribe(channel, subscriber)
