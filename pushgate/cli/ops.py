"""The operator's verbs: ``token`` mints a connection token, ``check-config`` lists every problem
of the environment at once, ``status`` shows what gateways hold, ``version`` says what runs."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

import httpx
from redis.asyncio.connection import parse_url

from pushgate.core.auth import connection_token
from pushgate.core.channels import Namespaces
from pushgate.core.redis_url import is_cluster_url, is_sentinel_url
from pushgate.core.settings import (
    ENV_PREFIX,
    RpcSettings,
    Settings,
    SettingsError,
    read_settings,
    redis_url_problems,
    variable_names,
)

# Read by the client and operator verbs, not by gateways or workers.
CLIENT_VARIABLES = frozenset({"PUSHGATE_GATEWAY_URL", "PUSHGATE_TOKEN", "PUSHGATE_API_KEY"})
MIN_SECRET_BYTES = 32  # HS256 keys shorter than the hash are guessable (RFC 7518, 3.2)
_COMPONENTS = ("uvicorn", "starlette", "redis", "arq", "httpx", "websockets")


def token(environ: Mapping[str, str], user: str, channels: tuple[str, ...], ttl: int) -> int:
    """Print a connection token signed with ``PUSHGATE_JWT_SECRET`` (its first secret)."""
    problems: list[str] = []
    settings: Settings = read_settings(Settings, environ, problems)
    if problems or not settings.auth.jwt_secret:
        for problem in problems or ["PUSHGATE_JWT_SECRET is not set: tokens are signed with it"]:
            print(f"pushgate token: {problem}", file=sys.stderr)
        return 2
    secret = settings.auth.jwt_secret[0]
    print(connection_token(secret, user, channels=channels, ttl=ttl, now=time.time()))
    return 0


def check_config(environ: Mapping[str, str]) -> int:
    """Print every problem of the configuration in ``environ``; exit 1 if there is any."""
    problems = config_problems(environ)
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print("configuration OK")
    return 0


def config_problems(environ: Mapping[str, str]) -> list[str]:
    """Every reason a gateway or worker started with ``environ`` would refuse or misbehave."""
    problems: list[str] = []
    settings: Settings = read_settings(Settings, environ, problems)
    known = variable_names() | CLIENT_VARIABLES
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in known:
            problems.append(f"{name} is not a pushgate setting (a typo?)")
    if any(len(secret.encode()) < MIN_SECRET_BYTES for secret in settings.auth.jwt_secret):
        problems.append(f"PUSHGATE_JWT_SECRET: a secret shorter than {MIN_SECRET_BYTES} bytes")
    checks = (
        settings.auth.validate_gateway,
        lambda: Namespaces.from_settings(settings.history),
        lambda: _check_redis_url(settings.redis_url),
        settings.validate_brokers,
        lambda: _check_rpc(settings.rpc),
    )
    for check in checks:
        try:
            check()
        except SettingsError as exc:
            problems.append(str(exc))
    return problems + redis_url_problems(settings.redis_url)


def _check_redis_url(url: str) -> None:
    if is_sentinel_url(url) or is_cluster_url(url):
        return  # redis_url_problems reads these
    try:
        parse_url(url)
    except ValueError as exc:
        raise SettingsError(f"PUSHGATE_REDIS_URL={url!r}: {exc}") from None


def _check_rpc(settings: RpcSettings) -> None:
    settings.validate()
    if settings.routes:
        # Imported here: the gateway imports the app's routes module at start, and so do we.
        from gateway.rpc.routes import load_routes

        load_routes(settings.routes)


def version() -> int:
    print(f"pushgate {_version('pushgate')} (python {sys.version.split()[0]})")
    for name in _COMPONENTS:
        print(f"  {name} {_version(name)}")
    return 0


def _version(package: str) -> str:
    try:
        return package_version(package)
    except PackageNotFoundError:
        return "(not installed)"


STATUS_TIMEOUT = 5.0
_STATUS_COLUMNS = (
    "gateway",
    "version",
    "up (s)",
    "open",
    "ws",
    "channels",
    "subs",
    "redis",
    "queue",
    "shards",
)
_BLANK = ("",) * (len(_STATUS_COLUMNS) - 2)  # a row of a gateway that gave no status


def status(gateways: list[str], api_key: str | None) -> int:
    """Print ``GET /status`` of each gateway as one table row; exit 1 if any did not answer."""
    headers = {"X-API-Key": api_key} if api_key else {}
    rows: list[tuple[str, ...]] = [_STATUS_COLUMNS]
    failed = False
    for base in gateways:
        try:
            response = httpx.get(
                base.rstrip("/") + "/status", headers=headers, timeout=STATUS_TIMEOUT
            )
        except httpx.HTTPError as exc:
            rows.append((base, f"unreachable: {type(exc).__name__}", *_BLANK))
            failed = True
            continue
        if response.status_code != 200:
            rows.append((base, f"HTTP {response.status_code}", *_BLANK))
            failed = True
            continue
        rows.append(_status_row(base, response.json()))
    widths = [max(len(row[i]) for row in rows) for i in range(len(_STATUS_COLUMNS))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 1 if failed else 0


def _status_row(base: str, answer: dict[str, Any]) -> tuple[str, ...]:
    redis = answer["redis"]
    health = (
        "ok" if redis["ok"] and redis["pubsub"] else "DOWN" if not redis["ok"] else "no pub/sub"
    )
    draining = " (draining)" if answer["draining"] else ""
    # Behind Sentinel: the master it resolved, and the name the sentinels know it by.
    address = redis.get("address") or "no master"
    if "sentinel" in redis:
        address += f" (sentinel {redis['sentinel']})"
    return (
        base + draining,
        answer["version"],
        f"{answer['uptime_seconds']:.0f}",
        str(answer["connections"]["open"]),
        str(answer["connections"]["ws"]),
        str(answer["channels"]),
        str(answer["subscriptions"]),
        f"{address} {health}",
        str(redis.get("queue_depth", "?")),
        _shards_cell(answer.get("shards", [])),
    )


def _shards_cell(shards: list[dict[str, Any]]) -> str:
    """``2/3 up, down: 1`` (indexes of the shards that are down, with their addresses when
    the gateway names them: a cluster master's index is only its place in today's list)."""
    down = [_shard_name(shard) for shard in shards if not shard["up"]]
    cell = f"{len(shards) - len(down)}/{len(shards)} up"
    return f"{cell}, down: {' '.join(down)}" if down else cell


def _shard_name(shard: dict[str, Any]) -> str:
    address = shard.get("address")
    return f"{shard['index']} ({address})" if address else str(shard["index"])
