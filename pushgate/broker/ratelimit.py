"""Rate limits that hold across gateway replicas: token buckets in Redis (``scripts``,
``keys.rate_bucket_key``).

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens a second; each call takes
one. Every gateway on the same Redis takes from the same buckets, and Redis's clock decides the
refill, so N replicas do not grant N budgets.

While Redis cannot be reached the limits fail open: calls are let through (and logged once per
outage), since whatever they were about to do needs Redis anyway and reports that itself.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from pushgate.broker import scripts
from pushgate.broker.keys import rate_bucket_key
from pushgate.core.errors import RateLimitedError
from pushgate.core.settings import RateLimitSettings

log = logging.getLogger(__name__)


def hashed(kind: str, value: str) -> str:
    """A bucket identity for a user or an API key: bounded, and not the secret itself."""
    return f"{kind}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"


def address(host: str | None) -> str:
    """A bucket identity for a client address; IPv6 clients by their /64 (one site's network:
    a host picks any address in it)."""
    if host is None:
        return "ip:unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return hashed("host", host)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"ip:{ip.ipv4_mapped}"
        return f"ip:{ipaddress.IPv6Network((ip, 64), strict=False).network_address}/64"
    return f"ip:{ip}"


class _Outage:
    """Whether Redis failed the last check, so an outage is logged once, not per call."""

    def __init__(self) -> None:
        self.failing = False

    def failed(self, exc: RedisError) -> None:
        if not self.failing:
            log.warning("rate limits not enforced: Redis is unreachable (%s)", exc)
        self.failing = True

    def answered(self) -> None:
        if self.failing:
            log.warning("rate limits enforced again: Redis answers")
        self.failing = False


@dataclass(frozen=True, slots=True)
class Budget:
    """``rate`` tokens a second, up to ``burst`` at once; a rate of 0 is no limit."""

    name: str  # in bucket keys
    what: str  # what is counted, for the 429's message
    rate: float
    burst: int


class TokenBucket:
    """One budget per identity, shared by every gateway on this Redis."""

    def __init__(self, redis: Redis, budget: Budget, outage: _Outage) -> None:
        self.budget = budget
        self._script = redis.register_script(scripts.TOKEN_BUCKET_SCRIPT)
        self._outage = outage

    async def acquire(self, who: str, cost: int = 1) -> tuple[bool, int]:
        """Take ``cost`` tokens of ``who``'s bucket: (allowed, milliseconds until it could be)."""
        if not 1 <= cost <= self.budget.burst:
            raise ValueError(f"cost must be 1..{self.budget.burst}")
        allowed, retry_ms = await self._script(
            keys=[rate_bucket_key(self.budget.name, who)],
            args=[repr(float(self.budget.rate)), self.budget.burst, cost],
        )
        return bool(allowed), int(retry_ms)

    @property
    def limits(self) -> bool:
        return self.budget.rate != 0

    async def take(self, who: str) -> None:
        """Take a token, or raise RateLimitedError; let the call through when Redis is down."""
        if not self.limits:
            return
        try:
            allowed, retry_ms = await self.acquire(who)
        except RedisError as exc:
            self._outage.failed(exc)
            return
        self._outage.answered()
        if not allowed:
            raise RateLimitedError(self.budget.what, max(1, math.ceil(retry_ms / 1000)))


class RateLimiter:
    """A gateway's budgets: job submissions, publish API calls, new connections."""

    def __init__(self, redis: Redis, settings: RateLimitSettings) -> None:
        outage = _Outage()
        self.submit = TokenBucket(
            redis, Budget("submit", "submissions", settings.submit, settings.submit_burst), outage
        )
        self.publish = TokenBucket(
            redis,
            Budget("publish", "publish calls", settings.publish, settings.publish_burst),
            outage,
        )
        self.connect = TokenBucket(
            redis,
            Budget("connect", "new connections", settings.connect, settings.connect_burst),
            outage,
        )
