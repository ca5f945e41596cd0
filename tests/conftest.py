"""Session fixtures: real services on free loopback ports, stopped by pid at the end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from pushgate.cli.redis_server import RedisServer
from tests.cluster import LocalCluster
from tests.origin import Origin, start_origin
from tests.stack import Stack


@pytest.fixture(scope="session")
def origin() -> Iterator[Origin]:
    """A real HTTP origin on 127.0.0.1 serving the fixture pages and misbehaving endpoints."""
    with start_origin() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server of our own on a free loopback port (never the shared 6379)."""
    with RedisServer() as server:
        yield server


def _cluster() -> Iterator[LocalCluster]:
    cluster = LocalCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


# A real Redis Cluster of three masters on free loopback ports, for tests that leave its layout
# as they found it (tests that move slots or kill masters take ``own_cluster``).
redis_cluster = pytest.fixture(scope="session", name="redis_cluster")(_cluster)
# A Redis Cluster of the test's own, to reshape (move slots, kill masters).
own_cluster = pytest.fixture(name="own_cluster")(_cluster)


# What `pushgate dev` runs with: no auth, and a chat namespace clients may publish to.
OPEN_ENV = {
    "PUSHGATE_AUTH_DISABLED": "true",
    "PUSHGATE_NAMESPACES": json.dumps(
        {
            "chat": {"publish": True, "history_size": 100, "history_ttl": 3600},
            "tiny": {"publish": True, "history_size": 3},
            "feed": {},
        }
    ),
    "PUSHGATE_FETCH_TIMEOUT": "2",
    "PUSHGATE_FETCH_RETRY_BACKOFF": "0.05",
    # A /ws/jobs socket of an unknown job waits this long before its 4404.
    "PUSHGATE_JOB_WAIT_SECONDS": "1",
    # Every test client is 127.0.0.1 and these stacks serve the whole session: one address's
    # budgets would throttle unrelated tests. The auth stack keeps the defaults;
    # test_rate_limits sets small ones.
    "PUSHGATE_RATE_SUBMIT": "0",
    "PUSHGATE_RATE_PUBLISH": "0",
    "PUSHGATE_RATE_CONNECT": "0",
}


def redis_db(server: RedisServer, db: int) -> str:
    return server.url.rsplit("/", 1)[0] + f"/{db}"


@pytest.fixture(scope="session")
def stack(redis_server: RedisServer) -> Iterator[Stack]:
    """Two gateway replicas and two workers, started as users start them, on one Redis.

    Workers may fetch loopback pages (the origin), with short limits so failures come fast.
    """
    env = {**OPEN_ENV, "PUSHGATE_ALLOW_PRIVATE_ADDRESSES": "true"}
    with Stack(redis_server.url, gateways=2, workers=2, env=env) as running:
        yield running


JWT_SECRET = "test-secret-" + "x" * 32


def token(user: str, **claims: Any) -> str:
    """A connection token for ``user`` that the auth stack's gateways accept."""
    return jwt.encode({"sub": user, **claims}, JWT_SECRET, algorithm="HS256")


API_KEY = "test-api-key"
ALLOWED_ORIGIN = "http://app.example"


@pytest.fixture(scope="session")
def auth_stack(redis_server: RedisServer) -> Iterator[Stack]:
    """A gateway and a worker with authentication on (HS256), an API key and an origin list."""
    env = {
        "PUSHGATE_JWT_SECRET": JWT_SECRET,
        "PUSHGATE_API_KEYS": f"old-key,{API_KEY}",
        "PUSHGATE_ALLOWED_ORIGINS": ALLOWED_ORIGIN,
        "PUSHGATE_CONNECT_TIMEOUT": "1",
        "PUSHGATE_ALLOW_PRIVATE_ADDRESSES": "true",
        "PUSHGATE_NAMESPACES": json.dumps(
            {"chat": {"publish": True}, "team": {"publish": True, "private": True}}
        ),
    }
    with Stack(redis_db(redis_server, 2), gateways=1, workers=1, env=env) as running:
        yield running


@pytest.fixture(scope="session")
def guarded_stack(redis_server: RedisServer) -> Iterator[Stack]:
    """One gateway and one worker with the SSRF guard on, on their own Redis database."""
    with Stack(redis_db(redis_server, 1), gateways=1, workers=1, env=OPEN_ENV) as running:
        yield running


@pytest.fixture(scope="session")
def bounded_stack(redis_server: RedisServer) -> Iterator[Stack]:
    """Two gateways (one per documented start form) with 1-second request-head and body bounds,
    and no workers: jobs stay queued, so their sockets stay open."""
    env = {**OPEN_ENV, "PUSHGATE_HEADER_TIMEOUT": "1", "PUSHGATE_BODY_TIMEOUT": "1"}
    with Stack(redis_db(redis_server, 3), gateways=2, workers=0, env=env) as running:
        yield running
