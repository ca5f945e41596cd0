"""Typed settings, read from ``PUSHGATE_*`` environment variables when asked to.

``Settings`` holds a few top-level values and one small value object per concern (auth, limits,
history, the worker pool, fetching). Every field is read from one variable, named in its
metadata (``PUSHGATE_`` + that name); lists are comma-separated and parsed once, here.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pushgate.core.redis_url import (
    cluster_url_problems,
    is_cluster_url,
    is_sentinel_url,
    sentinel_url_problems,
)

ENV_PREFIX = "PUSHGATE_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """An environment variable holds a value its setting cannot take."""


def _env(name: str, default: Any, *, positive: bool = False, choices: tuple[str, ...] = ()) -> Any:
    """A field read from ``PUSHGATE_<name>``; ``positive``: it must be at least 1; ``choices``:
    the only values it may take."""
    return field(default=default, metadata={"env": name, "positive": positive, "choices": choices})


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Who may connect and publish: JWT keys, browser origins, API keys."""

    # On whenever a key is set; off only with disabled (which `pushgate dev` sets).
    disabled: bool = _env("AUTH_DISABLED", False)
    # Several at once while rotating: tokens signed with any of them are accepted.
    jwt_secret: tuple[str, ...] = _env("JWT_SECRET", ())
    jwt_public_key: str = _env("JWT_PUBLIC_KEY", "")
    # A JSON Web Key Set of public keys (with kid), re-read when the file changes.
    jwks_file: str = _env("JWKS_FILE", "")
    # Signs the gateway's own channel-scoped subscribe tokens; defaults to the first jwt_secret.
    token_secret: str = _env("TOKEN_SECRET", "")
    subscribe_token_ttl: int = _env("SUBSCRIBE_TOKEN_TTL", 600)
    # Origins allowed for browser connections; "*" for any; none: same origin only.
    allowed_origins: tuple[str, ...] = _env("ALLOWED_ORIGINS", ())
    # Keys for the server-side publish API.
    api_keys: tuple[str, ...] = _env("API_KEYS", ())
    idempotency_ttl: int = _env("IDEMPOTENCY_TTL", 24 * 3600)

    @property
    def enabled(self) -> bool:
        return not self.disabled

    @property
    def signing_secret(self) -> str:
        return self.token_secret or next(iter(self.jwt_secret), "")

    @property
    def subscribe_secrets(self) -> tuple[str, ...]:
        """What a subscribe token may be signed with: during a rotation, any of the secrets."""
        return (self.token_secret,) if self.token_secret else self.jwt_secret

    def validate_gateway(self) -> None:
        """A gateway needs a way to authenticate, unless auth is disabled."""
        if self.disabled:
            return
        if not (self.jwt_secret or self.jwt_public_key or self.jwks_file):
            raise SettingsError(
                "authentication needs PUSHGATE_JWT_SECRET, PUSHGATE_JWT_PUBLIC_KEY or "
                "PUSHGATE_JWKS_FILE (or PUSHGATE_AUTH_DISABLED=true, for local development only)"
            )
        if not self.signing_secret:
            raise SettingsError(
                "PUSHGATE_TOKEN_SECRET is needed to sign subscribe tokens when public keys "
                "(PUSHGATE_JWT_PUBLIC_KEY, PUSHGATE_JWKS_FILE) are used without PUSHGATE_JWT_SECRET"
            )


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Bounds on what one request, connection or client may cost a gateway (docs/protocol.md)."""

    max_body_bytes: int = _env("MAX_BODY_BYTES", 64 * 1024)
    # Slow clients hold a connection each: a request's head must arrive this many seconds after
    # the connection opened (or the previous response), then its body within the second bound.
    header_timeout: float = _env("HEADER_TIMEOUT", 10.0, positive=True)
    body_timeout: float = _env("BODY_TIMEOUT", 30.0, positive=True)
    max_message_bytes: int = _env("MAX_MESSAGE_BYTES", 64 * 1024, positive=True)
    max_subscriptions: int = _env("MAX_SUBSCRIPTIONS", 100)
    # uvicorn's --limit-concurrency does not count WebSockets: the app caps them itself.
    max_connections: int = _env("MAX_CONNECTIONS", 10_000, positive=True)
    connect_timeout: float = _env("CONNECT_TIMEOUT", 5.0)
    client_rate: float = _env("CLIENT_RATE", 50.0)
    client_burst: int = _env("CLIENT_BURST", 100, positive=True)
    # A bounded queue per socket and a bound on each send, so that a client that stops reading
    # is dropped instead of holding memory or anyone else.
    ws_queue_size: int = _env("WS_QUEUE_SIZE", 1000, positive=True)
    ws_send_timeout: float = _env("WS_SEND_TIMEOUT", 10.0)
    # A /ws/jobs socket opened before its job is submitted waits this long for it (0: 4404 at
    # once), and at most this many wait at a time on one gateway (the rest get 4404 at once).
    job_wait_seconds: float = _env("JOB_WAIT_SECONDS", 30.0)
    job_wait_max_sockets: int = _env("JOB_WAIT_MAX_SOCKETS", 1000)


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """Budgets shared by every gateway on one Redis: tokens per second and bursts; 0 turns a
    rate off."""

    # Job submissions (POST /jobs, PUT /urls, the submit method) per user, or per client IP.
    submit: float = _env("RATE_SUBMIT", 10.0)
    submit_burst: int = _env("RATE_SUBMIT_BURST", 50, positive=True)
    # Calls of the server-side publish API per API key.
    publish: float = _env("RATE_PUBLISH", 100.0)
    publish_burst: int = _env("RATE_PUBLISH_BURST", 200, positive=True)
    # New WebSocket connections and SSE streams per client IP.
    connect: float = _env("RATE_CONNECT", 20.0)
    connect_burst: int = _env("RATE_CONNECT_BURST", 100, positive=True)


@dataclass(frozen=True, slots=True)
class RpcSettings:
    """The application's own calls over ``/ws`` (the ``rpc`` method): who serves them, and the
    bounds on each call and connection."""

    # In-process routes, ``package.module:NAME`` of a dict of name -> function or class; or an
    # HTTP endpoint of the app that gets a POST per call. At most one of the two.
    routes: str = _env("RPC_ROUTES", "")
    proxy_url: str = _env("RPC_PROXY_URL", "")
    # Every call is answered within this many seconds of its arrival, if only with a timeout.
    timeout: float = _env("RPC_TIMEOUT", 10.0)
    # Calls one connection may have waiting or running; more are refused (limit exceeded).
    max_queued: int = _env("RPC_MAX_QUEUED", 16, positive=True)
    # Calls the server may have waiting for one client's answer at a time.
    client_calls: int = _env("RPC_CLIENT_CALLS", 16, positive=True)
    # Threads running the sync handlers of in-process routes (off the event loop).
    threads: int = _env("RPC_THREADS", 8, positive=True)
    # Requests to the proxy endpoint in flight at once, per gateway; more wait their turn.
    proxy_concurrency: int = _env("RPC_PROXY_CONCURRENCY", 64, positive=True)

    def validate(self) -> None:
        """One way of serving calls at most, and a proxy URL a gateway can POST to."""
        if self.routes and self.proxy_url:
            raise SettingsError("set PUSHGATE_RPC_ROUTES or PUSHGATE_RPC_PROXY_URL, not both")
        parts = urlsplit(self.proxy_url)
        if self.proxy_url and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise SettingsError(
                f"PUSHGATE_RPC_PROXY_URL={self.proxy_url!r} is not an absolute http(s) URL"
            )


@dataclass(frozen=True, slots=True)
class HistorySettings:
    """How long channels keep their history: job channels here, user namespaces in their JSON."""

    # Each job channel is a capped, expiring Redis Stream; the job record lives as long.
    size: int = _env("HISTORY_SIZE", 100, positive=True)
    job_ttl: int = _env("JOB_TTL_SECONDS", 24 * 3600)
    # JSON object of user namespaces, e.g. {"chat": {"publish": true, "history_size": 100}}
    namespaces: str = _env("NAMESPACES", "")


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """How a gateway process stops under ``pushgate gateway`` (plain uvicorn closes all at once)."""

    # On SIGTERM a gateway closes its sockets with 1012 spread evenly over this many seconds, so
    # their clients reach the other replicas a few at a time. Keep the orchestrator's grace
    # period above preStop + this + about 10 s (deploy/base/gateway.yaml: 5 + 10 + 10 <= 30).
    drain_seconds: float = _env("DRAIN_SECONDS", 10.0)


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """Where Prometheus scrapes gateways and workers (docs: README, Metrics)."""

    # A gateway serves /metrics on its own port too; set this to serve it here (off the public
    # route) as well. 0: the main port only.
    port: int = _env("METRICS_PORT", 0)
    # Workers have no HTTP server of their own: they start one on this port. 0: none.
    worker_port: int = _env("WORKER_METRICS_PORT", 0)
    host: str = _env("METRICS_HOST", "0.0.0.0")


@dataclass(frozen=True, slots=True)
class WorkerPoolSettings:
    """How each worker process takes jobs from the queue."""

    concurrency: int = _env("WORKER_CONCURRENCY", 20, positive=True)
    # arq polls its queue: a job waits half of this on average before a worker sees it. At
    # 5 ms an idle worker costs Redis 200 cheap reads a second.
    poll_delay: float = _env("WORKER_POLL_DELAY", 0.005)
    # On SIGTERM a worker stops taking jobs and lets running ones finish for this long (keep it
    # under the orchestrator's grace period); what is still running then is re-queued.
    shutdown_grace: int = _env("WORKER_SHUTDOWN_GRACE", 20)
    # A running job is leased to its worker, which renews the lease every third of this; once it
    # lapses (the worker died or froze) another worker takes the job over.
    lease_seconds: float = _env("WORKER_LEASE_SECONDS", 10.0, positive=True)
    # Bound on one job's fetching and parsing, retries included; past it the job fails with
    # code `timeout`. 0: every fetch attempt, the backoffs between them, and time to parse.
    job_timeout_seconds: float = _env("JOB_TIMEOUT_SECONDS", 0.0)
    # Cap of the jittered backoff with which a worker waits for Redis to come back.
    reconnect_max_delay: float = _env("WORKER_RECONNECT_MAX_DELAY", 5.0)


@dataclass(frozen=True, slots=True)
class FetchSettings:
    """Bounds of one page fetch, and how failed attempts are retried."""

    timeout: float = _env("FETCH_TIMEOUT", 15.0)  # total: DNS, connects, redirects and body
    max_bytes: int = _env("FETCH_MAX_BYTES", 5 * 1024 * 1024, positive=True)  # raw and decoded
    max_redirects: int = _env("FETCH_MAX_REDIRECTS", 5)
    retries: int = _env("FETCH_RETRIES", 2)
    retry_backoff: float = _env("FETCH_RETRY_BACKOFF", 0.5)
    user_agent: str = _env("USER_AGENT", "pushgate/0.1 (+link extractor)")
    # Distinct links kept per page; past it the result says links_truncated (and parsing stops).
    max_links: int = _env("MAX_LINKS", 10_000, positive=True)
    # Lifts the SSRF guard so workers may fetch loopback and private hosts (local dev, tests).
    allow_private_addresses: bool = _env("ALLOW_PRIVATE_ADDRESSES", False)

    @property
    def worst_case(self) -> float:
        """What a job's fetching can take: every attempt, the backoffs between them, parsing."""
        attempts = self.retries + 1
        backoff = sum(self.retry_delay(n) for n in range(1, attempts))
        return attempts * self.timeout + backoff + 10.0

    def retry_delay(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based): exponential, capped at 10 s."""
        return float(min(self.retry_backoff * 2 ** (attempt - 1), 10.0))


SETTINGS_GROUPS: tuple[type, ...] = (
    AuthSettings,
    LimitSettings,
    RateLimitSettings,
    RpcSettings,
    HistorySettings,
    GatewaySettings,
    WorkerPoolSettings,
    FetchSettings,
    MetricsSettings,
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every tunable of gateway and worker."""

    # redis://, rediss://, unix://, or redis+sentinel:// (pushgate/core/redis_url.py).
    redis_url: str = _env("REDIS_URL", "redis://localhost:6379/0")
    # The broker plane (each channel's history, meta, idempotency keys, job record and pub/sub)
    # sharded by channel over these standalone Redis servers (pushgate/core/sharding.py). None:
    # all of it on redis_url, the one shard. The queue and rate limits stay on redis_url.
    # Or one redis+cluster://host1:port1,host2:port2,... (seed nodes): a Redis Cluster.
    broker_urls: tuple[str, ...] = _env("BROKER_URLS", ())
    # A gateway is ready while every broker shard answers; true: while some do (a subscription
    # to a channel of a down shard is answered "unavailable").
    ready_with_shards_down: bool = _env("READY_WITH_SHARDS_DOWN", False)
    # With redis+sentinel://, a job is accepted (2xx) and a job's outcome is recorded only once
    # this many replicas have it (WAIT), so that a failover cannot lose it; otherwise the
    # submission is answered 503 unavailable (retry with the same request_id). Set it to the
    # number of replicas Sentinel may promote (any of them may be). 0: off.
    redis_wait_replicas: int = _env("REDIS_WAIT_REPLICAS", 1)
    redis_wait_timeout: float = _env("REDIS_WAIT_TIMEOUT", 0.5)
    # Redis pub/sub liveness: the gateway pings its pub/sub connection when idle this long.
    pubsub_ping_interval: float = _env("PUBSUB_PING_INTERVAL", 5.0)
    log_format: str = _env("LOG_FORMAT", "text", choices=("text", "json"))
    log_level: str = _env("LOG_LEVEL", "info", choices=("debug", "info", "warning", "error"))
    # Bound on each Redis call a subscribing client waits for (and on each catch-up read): past
    # it the client is answered "unavailable, retry" instead of waiting on a Redis that hangs.
    redis_timeout: float = _env("REDIS_TIMEOUT", 1.5)
    # How often the hub compares each live channel's newest offset in Redis with the newest it
    # handed out, to find a publication nobody here got (0: never).
    position_check_seconds: float = _env("POSITION_CHECK_SECONDS", 10.0)
    auth: AuthSettings = field(default_factory=AuthSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    rates: RateLimitSettings = field(default_factory=RateLimitSettings)
    rpc: RpcSettings = field(default_factory=RpcSettings)
    history: HistorySettings = field(default_factory=HistorySettings)
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    pool: WorkerPoolSettings = field(default_factory=WorkerPoolSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    fetch: FetchSettings = field(default_factory=FetchSettings)

    @property
    def job_timeout(self) -> float:
        """Bound on one job: ``PUSHGATE_JOB_TIMEOUT_SECONDS``, else what its fetching can take."""
        return self.pool.job_timeout_seconds or self.fetch.worst_case

    @property
    def shard_urls(self) -> tuple[str, ...]:
        """The broker plane's Redis servers, in shard order: ``broker_urls``, else ``redis_url``."""
        return self.broker_urls or (self.redis_url,)

    @property
    def cluster_url(self) -> str | None:
        """The ``redis+cluster://`` broker URL (the list's commas are its seeds'), if any."""
        if self.broker_urls and is_cluster_url(self.broker_urls[0]):
            return ",".join(self.broker_urls)
        return None

    def validate_brokers(self) -> None:
        """Every broker URL a Redis URL, none twice (a shard's index is its place in the list),
        or one cluster URL."""
        if any(is_cluster_url(url) for url in self.broker_urls):
            self._validate_cluster()
            return
        problems = [_redis_url_problem(url) for url in self.broker_urls]
        seen: set[str] = set()
        for url in self.broker_urls:
            if url in seen:
                problems.append(f"{redacted_url(url)!r} is listed twice")
            seen.add(url)
        found = [problem for problem in problems if problem]
        if found:
            raise SettingsError(f"{ENV_PREFIX}BROKER_URLS: {'; '.join(found)}")

    def _validate_cluster(self) -> None:
        if self.cluster_url is None:
            found = ["a redis+cluster:// URL must be the only broker URL (its seeds after it)"]
        else:
            found = cluster_url_problems(self.cluster_url)
        if found:
            raise SettingsError(f"{ENV_PREFIX}BROKER_URLS: {'; '.join(found)}")

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values no log line may show: keys, secrets, and the Redis passwords."""
        passwords = [urlsplit(url).password or "" for url in (self.redis_url, *self.broker_urls)]
        auth = self.auth
        return (*auth.jwt_secret, auth.token_secret, *auth.api_keys, *passwords)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from ``environ``; unset variables keep their defaults.

        Raises SettingsError naming every variable that holds a value it cannot take.
        """
        problems: list[str] = []
        settings: Settings = read_settings(cls, environ, problems)
        problems += redis_url_problems(settings.redis_url)
        if problems:
            raise SettingsError("\n".join(problems))
        return settings

    @property
    def wait_replicas(self) -> int:
        """Replicas a write must reach before it counts: only behind Sentinel."""
        return self.redis_wait_replicas if is_sentinel_url(self.redis_url) else 0


def redis_url_problems(url: str) -> list[str]:
    """Every reason a ``redis+sentinel://`` ``PUSHGATE_REDIS_URL`` cannot be used, each naming
    the variable (other URLs are redis-py's to read; a cluster URL is refused)."""
    if is_cluster_url(url):
        return [
            f"PUSHGATE_REDIS_URL={_without_password(url)!r}: the queue and rate limits need one "
            "Redis (or Sentinel), not a cluster (arq has no Redis Cluster support); "
            "a cluster goes in PUSHGATE_BROKER_URLS"
        ]
    if not is_sentinel_url(url):
        return []
    shown = _without_password(url)
    return [f"PUSHGATE_REDIS_URL={shown!r}: {problem}" for problem in sentinel_url_problems(url)]


def _without_password(url: str) -> str:
    """``url`` fit for a message: its password (between ``:`` and ``@``) starred out."""
    head, at, tail = url.rpartition("@")
    if not at or ":" not in head.partition("://")[2]:
        return url
    scheme_user, _, _password = head.rpartition(":")
    return f"{scheme_user}:***@{tail}"


_REDIS_SCHEMES = ("redis", "rediss", "unix")


def _redis_url_problem(url: str) -> str:
    """What is wrong with ``url`` as a Redis server's URL ("" if nothing)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        return f"{redacted_url(url)!r}: {exc}"
    if parts.scheme not in _REDIS_SCHEMES:
        return f"{redacted_url(url)!r} is not a {'/'.join(_REDIS_SCHEMES)}:// URL"
    if not (parts.path if parts.scheme == "unix" else parts.hostname):
        return f"{redacted_url(url)!r} names no server"
    return ""


def redacted_url(url: str) -> str:
    """``url`` without its password, to show in logs, probes and status."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "(unparseable URL)"
    if not password:
        return url
    user = f"{parts.username}:***@" if parts.username else "***@"
    return parts._replace(netloc=user + parts.netloc.rpartition("@")[2]).geturl()


def read_settings(kind: type[Any], environ: Mapping[str, str], problems: list[str]) -> Any:
    """An instance of the settings class ``kind``, its groups and fields read from ``environ``.

    A value a field cannot take is described in ``problems`` and the field keeps its default.
    """
    values: dict[str, Any] = {}
    hints = typing.get_type_hints(kind)
    for item in dataclasses.fields(kind):
        hint = hints[item.name]
        if hint in SETTINGS_GROUPS:
            values[item.name] = read_settings(hint, environ, problems)
            continue
        name = ENV_PREFIX + item.metadata["env"]
        parse = _parser_for(hint, name)  # before the lookup: an unknown type fails every start
        raw = environ.get(name)
        try:
            values[item.name] = _checked(
                item, name, item.default if raw is None else parse(raw.strip())
            )
        except SettingsError as exc:
            problems.append(str(exc))
    return kind(**values)


def variable_names(kind: type[Any] = Settings) -> set[str]:
    """Every environment variable the settings class ``kind`` reads."""
    names: set[str] = set()
    hints = typing.get_type_hints(kind)
    for item in dataclasses.fields(kind):
        hint = hints[item.name]
        if hint in SETTINGS_GROUPS:
            names |= variable_names(hint)
        else:
            names.add(ENV_PREFIX + item.metadata["env"])
    return names


def _checked(item: dataclasses.Field[Any], name: str, value: Any) -> Any:
    choices = item.metadata.get("choices")
    if choices:
        value = str(value).lower()
        if value not in choices:
            raise SettingsError(f"{name}={value!r} is not one of {', '.join(choices)}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise SettingsError(f"{name} must not be negative")
        if item.metadata["positive"] and value < 1:
            raise SettingsError(f"{name} must be at least 1")
    return value


def _parser_for(hint: Any, name: str) -> Any:
    if hint is bool:
        return lambda raw: _boolean(raw, name)
    if hint in (int, float):
        return lambda raw: _number(hint, raw, name)
    if hint is str:
        return str
    if hint == tuple[str, ...]:
        return lambda raw: tuple(entry.strip() for entry in raw.split(",") if entry.strip())
    raise SettingsError(f"{name}: settings of type {hint!r} cannot be read from the environment")


def _boolean(raw: str, name: str) -> bool:
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingsError(f"{name}={raw!r} is not a valid bool")


def _number(kind: type[int] | type[float], raw: str, name: str) -> int | float:
    try:
        return kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
