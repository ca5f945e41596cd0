"""The fuzzed gateway: a real uvicorn process with authentication on, on its own Redis database,
and no workers (submitted jobs stay queued; nothing is ever fetched). A canary subscriber on it
receives a steady publication stream while the fuzz tests run."""

from __future__ import annotations

import json
from collections.abc import Iterator

import jwt
import pytest

from pushgate.cli.redis_server import RedisServer
from tests.conftest import redis_db
from tests.fuzz.canary import Canary
from tests.stack import Gateway, Stack

FUZZ_SECRET = "fuzz-secret-" + "y" * 32
FUZZ_API_KEY = "fuzz-api-key"
CANARY_CHANNEL = "chat:canary"


def fuzz_token(user: str = "fuzzer") -> str:
    return jwt.encode({"sub": user, "channels": ["team:*"]}, FUZZ_SECRET, algorithm="HS256")


@pytest.fixture(scope="package")
def fuzzed(redis_server: RedisServer) -> Iterator[Gateway]:
    env = {
        "PUSHGATE_JWT_SECRET": FUZZ_SECRET,
        "PUSHGATE_API_KEYS": FUZZ_API_KEY,
        "PUSHGATE_NAMESPACES": json.dumps(
            {
                "chat": {"publish": True},
                "tiny": {"publish": True, "history_size": 3},
                "team": {"publish": True, "private": True},
                "feed": {},
            }
        ),
        # The fuzzer is one client sending as fast as it can: it should meet every check, not
        # only the rate limit.
        "PUSHGATE_CLIENT_RATE": "100000",
        "PUSHGATE_CLIENT_BURST": "100000",
        "PUSHGATE_HEADER_TIMEOUT": "2",
        "PUSHGATE_BODY_TIMEOUT": "2",
    }
    with Stack(redis_db(redis_server, 5), gateways=1, workers=0, env=env) as stack:
        yield stack.gateways[0]


@pytest.fixture(scope="package")
def canary(fuzzed: Gateway) -> Iterator[Canary]:
    running = Canary(fuzzed.ws_url, fuzz_token("canary"), CANARY_CHANNEL).start()
    yield running
    running.stop()  # idempotent: the last test stops it and checks its report
