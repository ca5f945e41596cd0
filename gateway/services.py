"""What a gateway process shares between requests, built in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from arq.connections import ArqRedis
from starlette.requests import HTTPConnection

from gateway.delivery.connections import Connections
from gateway.delivery.hub import Hub
from gateway.delivery.positions import PositionReads
from gateway.job_wait import JobWaits
from gateway.metrics import GatewayMetrics
from gateway.rpc.calls import RpcBackend
from pushgate.broker.ratelimit import RateLimiter
from pushgate.broker.store import Backend
from pushgate.core.auth import Authenticator
from pushgate.core.channels import Namespaces
from pushgate.core.settings import Settings


@dataclass(frozen=True, slots=True)
class Services:
    """What every request of one gateway process shares; built once in the lifespan."""

    settings: Settings
    redis: ArqRedis
    backend: Backend
    positions: PositionReads  # Backend.position, batched
    hub: Hub
    auth: Authenticator
    namespaces: Namespaces
    connections: Connections
    rates: RateLimiter
    started_at: float  # time.monotonic() when the gateway started
    metrics: GatewayMetrics
    rpc: RpcBackend | None  # None: this gateway serves no application calls
    job_waits: JobWaits


def services(connection: HTTPConnection) -> Services:
    return cast(Services, connection.state.services)
