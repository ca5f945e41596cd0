"""What a gateway process shares between requests, built in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from arq.connections import ArqRedis
from starlette.requests import HTTPConnection

from gateway.delivery.connections import Connections
from gateway.delivery.positions import PositionReads
from gateway.delivery.shards import ShardedHub
from gateway.job_wait import JobWaits
from gateway.metrics import GatewayMetrics
from gateway.rpc.calls import RpcBackend
from pushgate.broker.ratelimit import RateLimiter
from pushgate.broker.shards import ShardedStore
from pushgate.core.auth import Authenticator
from pushgate.core.channels import Namespaces
from pushgate.core.settings import Settings


@dataclass(frozen=True, slots=True)
class Services:
    """What every request of one gateway process shares; built once in the lifespan."""

    settings: Settings
    redis: ArqRedis
    backend: ShardedStore  # the broker plane: history, publishing, job records
    positions: PositionReads  # the backend's position reads, batched
    hub: ShardedHub
    auth: Authenticator
    namespaces: Namespaces
    connections: Connections
    rates: RateLimiter
    started_at: float  # time.monotonic() when the gateway started
    metrics: GatewayMetrics
    rpc: RpcBackend | None  # None: this gateway serves no application calls
    job_waits: JobWaits


def services(connection: HTTPConnection) -> Services:
    # From the scope's state itself: ``connection.state`` makes a ``State`` object per
    # connection (two objects the cyclic GC tracks, for as long as a socket is open).
    return cast(Services, connection.scope["state"]["services"])
