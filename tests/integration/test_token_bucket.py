"""The token bucket Lua script and ``TokenBucket``, against a real redis-server."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from pushgate.broker.keys import rate_bucket_key
from pushgate.broker.ratelimit import Budget, RateLimiter, TokenBucket, _Outage, address, hashed
from pushgate.cli.redis_server import RedisServer
from pushgate.core.errors import ErrorKind, RateLimitedError
from pushgate.core.settings import RateLimitSettings
from tests.conftest import redis_db

# Slow enough that no token comes back during a test: every count below is exact.
CRAWL = 0.001


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_db(redis_server, 5))
    try:
        yield client
    finally:
        await client.aclose()


def bucket(redis: Redis, rate: float, burst: int) -> TokenBucket:
    return TokenBucket(redis, Budget(f"test-{uuid.uuid4().hex}", "calls", rate, burst), _Outage())


async def state(redis: Redis, bucket: TokenBucket, who: str) -> tuple[float, int]:
    key = rate_bucket_key(bucket.budget.name, who)
    tokens, ts = await redis.hmget(key, ["tokens", "ts"])  # type: ignore[misc]
    return float(tokens), int(ts)


async def redis_now_ms(redis: Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def test_a_burst_then_refusals_with_the_time_one_token_takes(redis: Redis) -> None:
    limited = bucket(redis, rate=0.5, burst=3)
    answers = [await limited.acquire("a") for _ in range(5)]
    assert [allowed for allowed, _ in answers] == [True, True, True, False, False]
    for _, retry_ms in answers[3:]:
        assert 1 <= retry_ms <= 2000  # one token at 0.5 a second
    assert (await limited.acquire("b"))[0]  # every identity has its own bucket


async def test_refill_by_elapsed_redis_time_capped_at_burst(redis: Redis) -> None:
    limited = bucket(redis, rate=10, burst=20)
    key = rate_bucket_key(limited.budget.name, "a")
    now = await redis_now_ms(redis)
    # Empty 1.5 s ago (by Redis's clock): 15 tokens have come back since.
    await redis.hset(key, mapping={"tokens": "0", "ts": str(now - 1500)})  # type: ignore[misc]
    assert (await limited.acquire("a", cost=15))[0]
    tokens, ts = await state(redis, limited, "a")
    assert 0 <= tokens < 0.5  # what accrued between the two calls
    assert ts >= now
    # Idle for an hour: full, never more.
    await redis.hset(key, mapping={"tokens": "0", "ts": str(now - 3_600_000)})  # type: ignore[misc]
    assert (await limited.acquire("a"))[0]
    assert (await state(redis, limited, "a"))[0] == 19


async def test_cost_is_taken_whole_or_not_at_all(redis: Redis) -> None:
    limited = bucket(redis, rate=CRAWL, burst=5)
    assert (await limited.acquire("a", cost=3))[0]
    before = await state(redis, limited, "a")
    allowed, retry_ms = await limited.acquire("a", cost=3)
    assert not allowed
    assert retry_ms == pytest.approx(1 / CRAWL * 1000, rel=0.01)  # one more token
    assert await state(redis, limited, "a") == before  # a refusal changes nothing
    with pytest.raises(ValueError, match="cost"):
        await limited.acquire("a", cost=6)


async def test_an_idle_bucket_expires_once_it_would_be_full(redis: Redis) -> None:
    limited = bucket(redis, rate=10, burst=50)
    key = rate_bucket_key(limited.budget.name, "a")
    await limited.acquire("a", cost=5)
    ttl = await redis.pttl(key)
    assert 0 < ttl <= 500  # five tokens at ten a second
    await limited.acquire("a", cost=40)
    assert 500 < await redis.pttl(key) <= 4500


async def test_concurrent_takers_share_one_budget_exactly(
    redis: Redis, redis_server: RedisServer
) -> None:
    # Two clients stand for two gateways: 60 attempts against a burst of 25.
    other = Redis.from_url(redis_db(redis_server, 5))
    try:
        name = f"test-{uuid.uuid4().hex}"
        takers = [
            TokenBucket(client, Budget(name, "calls", CRAWL, 25), _Outage())
            for client in (redis, other)
        ]
        answers = await asyncio.gather(*(takers[n % 2].acquire("a") for n in range(60)))
    finally:
        await other.aclose()
    assert sum(allowed for allowed, _ in answers) == 25


async def test_take_raises_rate_limited_with_whole_seconds(redis: Redis) -> None:
    limited = bucket(redis, rate=0.4, burst=1)
    await limited.take("a")
    with pytest.raises(RateLimitedError) as refused:
        await limited.take("a")
    assert refused.value.kind is ErrorKind.RATE_LIMITED
    assert refused.value.retry_after == 3  # 2.5 s, rounded up
    assert refused.value.data == {"retry_after": 3}


async def test_a_rate_of_zero_never_asks_redis(redis: Redis) -> None:
    unlimited = bucket(redis, rate=0, burst=1)
    for _ in range(5):
        await unlimited.take("a")
    assert not await redis.exists(rate_bucket_key(unlimited.budget.name, "a"))


async def test_fails_open_while_redis_is_down_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = RedisServer().start()
    client = Redis.from_url(server.url)
    limiter = RateLimiter(client, RateLimitSettings(connect=CRAWL, connect_burst=1))
    try:
        await limiter.connect.take("a")
        with pytest.raises(RateLimitedError):
            await limiter.connect.take("a")
        server.stop()
        with caplog.at_level(logging.WARNING, logger="pushgate.broker.ratelimit"):
            for _ in range(5):
                await limiter.connect.take("a")  # let through
                await limiter.submit.take("a")
        assert [r.getMessage() for r in caplog.records if "not enforced" in r.getMessage()]
        assert len(caplog.records) == 1
    finally:
        await client.aclose()
        server.stop()


def test_identities_are_bounded_and_never_the_secret() -> None:
    secret = "sk-live-" + "z" * 200
    who = hashed("key", secret)
    assert secret not in who
    assert len(who) == len("key:") + 32
    assert address("10.1.2.3") == "ip:10.1.2.3"
    assert address("::ffff:10.1.2.3") == "ip:10.1.2.3"
    assert (
        address("2001:db8:1:2:3:4:5:6")
        == address("2001:db8:1:2:ffff::1")
        == ("ip:2001:db8:1:2::/64")
    )
    assert address(None) == "ip:unknown"
