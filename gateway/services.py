"""What a gateway process shares between requests, built in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from arq.connections import ArqRedis
from starlette.requests import HTTPConnection

from gateway.delivery.hub import Hub
from pushgate.broker.ratelimit import RateLimiter
from pushgate.broker.store import Backend
from pushgate.core.auth import Authenticator
from pushgate.core.channels import Namespaces
from pushgate.core.settings import Settings


@dataclass
class ConnectionGate:
    """Counts this process's realtime connections; uvicorn's own limit ignores WebSockets."""

    limit: int
    open: int = 0

    def try_enter(self) -> bool:
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def leave(self) -> None:
        self.open -= 1


@dataclass(frozen=True, slots=True)
class Services:
    """What every request of one gateway process shares; built once in the lifespan."""

    settings: Settings
    redis: ArqRedis
    backend: Backend
    hub: Hub
    auth: Authenticator
    namespaces: Namespaces
    connections: ConnectionGate
    rates: RateLimiter


def services(connection: HTTPConnection) -> Services:
    return cast(Services, connection.state.services)
