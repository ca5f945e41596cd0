"""One typed settings object, read from ``PUSHGATE_*`` environment variables when asked to."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

ENV_PREFIX = "PUSHGATE_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """An environment variable holds a value its setting cannot take."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Every tunable of gateway and worker. Each field ``x`` is read from ``PUSHGATE_X``."""

    redis_url: str = "redis://localhost:6379/0"
    # Lifts the SSRF guard so workers may fetch loopback and private hosts (local dev, tests).
    allow_private_addresses: bool = False

    # HTTP API
    max_body_bytes: int = 64 * 1024

    # History of each job channel: a capped, expiring Redis Stream. The job record lives as long.
    history_size: int = 100
    job_ttl_seconds: int = 24 * 3600

    # WebSocket delivery: a bounded queue per socket and a bound on each send, so that a client
    # that stops reading is dropped instead of holding memory or anyone else.
    ws_queue_size: int = 1000
    ws_send_timeout: float = 10.0
    # Redis pub/sub liveness: the gateway pings its pub/sub connection when idle this long.
    pubsub_ping_interval: float = 5.0

    # Realtime protocol limits (docs/protocol.md)
    max_message_bytes: int = 64 * 1024
    max_subscriptions: int = 100
    # uvicorn's --limit-concurrency does not count WebSockets: the app caps them itself.
    max_connections: int = 10_000
    connect_timeout: float = 5.0
    client_rate: float = 50.0
    client_burst: int = 100
    # JSON object of user namespaces, e.g. {"chat": {"publish": true, "history_size": 100}}
    namespaces: str = ""

    # Auth: on whenever a key is set; off only with auth_disabled (which `pushgate dev` sets).
    auth_disabled: bool = False
    jwt_secret: str = ""
    jwt_public_key: str = ""
    # Signs the gateway's own channel-scoped subscribe tokens; defaults to jwt_secret.
    token_secret: str = ""
    subscribe_token_ttl: int = 600
    # Comma-separated origins allowed for browser connections; "*" for any; empty: same origin.
    allowed_origins: str = ""
    # Comma-separated keys for the server-side publish API.
    api_keys: str = ""
    idempotency_ttl: int = 24 * 3600

    # Worker
    worker_concurrency: int = 20
    # arq polls its queue: a job waits half of this on average before a worker sees it. At
    # 5 ms an idle worker costs Redis 200 cheap reads a second.
    worker_poll_delay: float = 0.005
    # On SIGTERM a worker stops taking jobs and lets running ones finish for this long (keep it
    # under the orchestrator's grace period); what is still running then is re-queued.
    worker_shutdown_grace: int = 20
    fetch_timeout: float = 15.0
    fetch_max_bytes: int = 5 * 1024 * 1024
    fetch_max_redirects: int = 5
    fetch_retries: int = 2
    fetch_retry_backoff: float = 0.5
    user_agent: str = "pushgate/0.1 (+link extractor)"
    # A running job is leased to its worker, which renews the lease every third of this; once it
    # lapses (the worker died or froze) another worker takes the job over.
    worker_lease_seconds: float = 10.0
    # Bound on one job's fetching and parsing, retries included; past it the job fails with
    # code `timeout`. 0: every fetch attempt, the backoffs between them, and time to parse.
    job_timeout_seconds: float = 0.0
    # Cap of the jittered backoff with which a worker waits for Redis to come back.
    worker_reconnect_max_delay: float = 5.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from ``environ``; unset variables keep their defaults."""
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = environ.get(ENV_PREFIX + field.name.upper())
            if raw is not None:
                values[field.name] = _convert(field, raw.strip())
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise SettingsError(f"{ENV_PREFIX}{field.name.upper()} must not be negative")
        positive = (
            "ws_queue_size", "history_size", "worker_concurrency", "fetch_max_bytes",
            "max_message_bytes", "max_connections", "client_burst",
        )  # fmt: skip
        for name in positive:
            if getattr(self, name) < 1:
                raise SettingsError(f"{ENV_PREFIX}{name.upper()} must be at least 1")

    @property
    def auth_enabled(self) -> bool:
        return not self.auth_disabled

    @property
    def signing_secret(self) -> str:
        return self.token_secret or self.jwt_secret

    def validate_gateway(self) -> None:
        """What a gateway needs beyond ``validate``: a way to authenticate, unless disabled."""
        if self.auth_disabled:
            return
        if not (self.jwt_secret or self.jwt_public_key):
            raise SettingsError(
                "authentication needs PUSHGATE_JWT_SECRET or PUSHGATE_JWT_PUBLIC_KEY "
                "(or PUSHGATE_AUTH_DISABLED=true, for local development only)"
            )
        if not self.signing_secret:
            raise SettingsError(
                "PUSHGATE_TOKEN_SECRET is needed to sign subscribe tokens when "
                "PUSHGATE_JWT_PUBLIC_KEY is used without PUSHGATE_JWT_SECRET"
            )

    def validate_worker(self) -> None:
        """What a worker needs beyond ``validate``: a lease it can renew."""
        if self.worker_lease_seconds <= 0:
            raise SettingsError(f"{ENV_PREFIX}WORKER_LEASE_SECONDS must be more than 0")

    @property
    def job_timeout(self) -> float:
        """Bound on one job: ``job_timeout_seconds``, else every fetch attempt, the backoffs
        between them, and parsing."""
        if self.job_timeout_seconds:
            return self.job_timeout_seconds
        attempts = self.fetch_retries + 1
        backoff = sum(self.retry_delay(n) for n in range(1, attempts))
        return attempts * self.fetch_timeout + backoff + 10.0

    def retry_delay(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based): exponential, capped at 10 s."""
        return float(min(self.fetch_retry_backoff * 2 ** (attempt - 1), 10.0))


def _convert(field: dataclasses.Field[Any], raw: str) -> Any:
    name = ENV_PREFIX + field.name.upper()
    kind = field.type
    try:
        if kind == "bool":
            lowered = raw.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind}") from None
    return raw
