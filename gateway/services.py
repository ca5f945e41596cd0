"""What a gateway process shares between requests, built in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from arq.connections import ArqRedis
from starlette.requests import HTTPConnection

from gateway.hub import Hub
from pushgate.backend import Backend
from pushgate.settings import Settings


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    redis: ArqRedis
    backend: Backend
    hub: Hub


def services(connection: HTTPConnection) -> Services:
    return cast(Services, connection.state.services)
