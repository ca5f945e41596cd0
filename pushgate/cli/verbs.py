"""The client verbs of the ``pushgate`` command: ``submit``, ``subscribe``, ``publish``, ``rpc``.

Each prints JSON lines on stdout and ends with an exit code: 0 ok, 1 the job failed, 2 a usage
or connection error or an error answer, explained on stderr.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pushgate.client import ClientError, Position, PushgateClient, RpcError, Subscription
from pushgate.core.errors import PushgateError
from pushgate.core.events import TERMINAL_TYPES
from pushgate.core.wire import parse_offset

DEFAULT_GATEWAY = "http://127.0.0.1:8000"
EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_ERROR = 2
# Enough for a gateway restart or a rolling deploy (about two minutes of backoff), not forever.
RECONNECT_ATTEMPTS = 20
_WS_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}


class UsageError(ValueError):
    """A command-line value that cannot work."""


@dataclass(frozen=True, slots=True)
class Target:
    """Which gateway to talk to, and with which token."""

    ws_url: str
    token: str | None

    @classmethod
    def resolve(cls, gateway: str | None, token: str | None, environ: Mapping[str, str]) -> Target:
        """Options first, then ``PUSHGATE_GATEWAY_URL`` / ``PUSHGATE_TOKEN``, then defaults."""
        base = gateway or environ.get("PUSHGATE_GATEWAY_URL") or DEFAULT_GATEWAY
        return cls(websocket_url(base), token or environ.get("PUSHGATE_TOKEN") or None)


def websocket_url(gateway: str) -> str:
    """The ``/ws`` endpoint of a gateway given by its base URL (http, https, ws or wss)."""
    parts = urlsplit(gateway)
    scheme = _WS_SCHEMES.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise UsageError(f"gateway must be a URL like http://host:port, not {gateway!r}")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws", "", ""))


def parse_since(text: str) -> Position:
    """``EPOCH:OFFSET``, both stream ids as a subscribe answer or a publication gives them."""
    epoch, _, offset = text.partition(":")
    try:
        parse_offset(epoch)
        parse_offset(offset)
    except PushgateError:
        raise UsageError(
            f"--since must be EPOCH:OFFSET, e.g. 1700000000000-0:1700000000123-4, not {text!r}"
        ) from None
    return Position(epoch, offset)


def parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"data must be JSON: {exc}") from None


def run(verb: Coroutine[Any, Any, int]) -> int:
    """Run a verb to its exit code, turning client failures into a message and exit code 2."""
    try:
        return asyncio.run(verb)
    except KeyboardInterrupt:
        return EXIT_OK  # Ctrl-C is how `subscribe` is meant to end
    except RpcError as exc:
        return _fail(f"{exc.code.name.lower().replace('_', ' ')} ({int(exc.code)}): {exc.message}")
    except ClientError as exc:
        return _fail(str(exc))
    except TimeoutError:
        return _fail("the gateway did not answer in time")


async def submit(target: Target, url: str, request_id: str | None, *, follow: bool) -> int:
    """Print the submit answer; with ``follow``, then every event of the job until its end."""
    async with _client(target) as client:
        job = await client.submit(url, request_id, subscribe=follow)
        _print_json(job)
        if not follow:
            return EXIT_OK
        return await _follow_job(client.subscription(job["channel"]))


async def subscribe(target: Target, channel: str, since: Position | None) -> int:
    """Print every publication of ``channel`` until interrupted."""
    async with _client(target) as client:
        async for publication in await client.subscribe(channel, since=since):
            _print_json(dataclasses.asdict(publication))
    return EXIT_OK


async def publish(target: Target, channel: str, data: Any) -> int:
    async with _client(target) as client:
        _print_json(await client.publish(channel, data))
    return EXIT_OK


async def rpc(target: Target, method: str, params: Any) -> int:
    """Print the result of one call of the application's ``method``."""
    async with _client(target) as client:
        _print_json(await client.rpc(method, params))
    return EXIT_OK


async def _follow_job(events: Subscription) -> int:
    async for publication in events:
        _print_json(publication.data)
        kind = publication.data.get("type") if isinstance(publication.data, dict) else None
        if kind in TERMINAL_TYPES:
            return EXIT_JOB_FAILED if kind == "failed" else EXIT_OK
    raise ClientError("the job's events stopped before it finished")


def _client(target: Target) -> PushgateClient:
    return PushgateClient(
        target.ws_url,
        token=target.token,
        max_attempts=RECONNECT_ATTEMPTS,
        on_recovery=_warn_if_unrecovered,
    )


def _warn_if_unrecovered(subscription: Subscription) -> None:
    if subscription.recovered is False:
        print(
            f"pushgate: the history of {subscription.channel} no longer reaches back to where "
            "this left off; publications in between are missing",
            file=sys.stderr,
        )


def _print_json(value: Any) -> None:
    print(json.dumps(value), flush=True)


def _fail(message: str) -> int:
    print(f"pushgate: {message}", file=sys.stderr)
    return EXIT_ERROR
