"""Channel names, namespaces and who may do what on them. Pure: no I/O."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pushgate.core.errors import ErrorKind, PushgateError
from pushgate.core.settings import HistorySettings, SettingsError

JOB_NAMESPACE = "job"
_CHANNEL = re.compile(r"([a-z][a-z0-9_-]{0,31}):([A-Za-z0-9_.-]{1,128})")
_NAMESPACE_OPTIONS = {"publish": bool, "private": bool, "history_size": int, "history_ttl": int}


class ChannelNameError(PushgateError):
    """A string that is not a channel name."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorKind.INVALID_CHANNEL, message)


@dataclass(frozen=True, slots=True)
class Channel:
    """A valid channel name, split into its namespace and name."""

    namespace: str
    name: str

    @property
    def full(self) -> str:
        return f"{self.namespace}:{self.name}"

    def __str__(self) -> str:
        return self.full


def parse_channel(value: object) -> Channel:
    if not isinstance(value, str) or (match := _CHANNEL.fullmatch(value)) is None:
        raise ChannelNameError(
            "channel must be <namespace>:<name>: a namespace of [a-z0-9_-] starting with a "
            "letter (at most 32), a name of 1-128 characters of [A-Za-z0-9_.-]"
        )
    return Channel(match[1], match[2])


@dataclass(frozen=True, slots=True)
class Namespace:
    """What clients may do on a namespace's channels, and how long its history lasts."""

    name: str
    publish: bool = False
    private: bool = False
    history_size: int = 100
    history_ttl: int = 3600


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is on the other end: ``user`` is None when auth is off and nobody said."""

    user: str | None
    channels: tuple[str, ...] = ()
    expires_at: int | None = None

    def grants(self, channel: Channel) -> bool:
        """Whether the token's ``channels`` claim names the channel or its whole namespace."""
        return channel.full in self.channels or f"{channel.namespace}:*" in self.channels


ANONYMOUS = Identity(user=None)


class Namespaces:
    """The built-in ``job`` namespace and the user namespaces from settings."""

    def __init__(self, namespaces: Mapping[str, Namespace]) -> None:
        self._namespaces = dict(namespaces)

    @classmethod
    def from_settings(cls, settings: HistorySettings) -> Namespaces:
        job = Namespace(JOB_NAMESPACE, history_size=settings.size, history_ttl=settings.job_ttl)
        return cls({JOB_NAMESPACE: job, **_parse_user_namespaces(settings.namespaces)})

    def get(self, channel: Channel) -> Namespace | None:
        return self._namespaces.get(channel.namespace)


def _parse_user_namespaces(raw: str) -> dict[str, Namespace]:
    if not raw.strip():
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"PUSHGATE_NAMESPACES is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise SettingsError("PUSHGATE_NAMESPACES must be a JSON object of namespaces")
    return {name: _parse_namespace(name, options) for name, options in config.items()}


def _parse_namespace(name: str, options: Any) -> Namespace:
    where = f"PUSHGATE_NAMESPACES[{name!r}]"
    if name == JOB_NAMESPACE or not _CHANNEL.fullmatch(f"{name}:x"):
        raise SettingsError(f"{where}: not a usable namespace name")
    if not isinstance(options, dict):
        raise SettingsError(f"{where} must be an object")
    for key, value in options.items():
        kind = _NAMESPACE_OPTIONS.get(key)
        if kind is None:
            raise SettingsError(f"{where}: unknown option {key!r}")
        if type(value) is not kind or (isinstance(value, int) and kind is int and value < 1):
            expected = "a positive integer" if kind is int else "true or false"
            raise SettingsError(f"{where}.{key} must be {expected}")
    return Namespace(name, **options)


def may_subscribe(
    namespace: Namespace,
    channel: Channel,
    identity: Identity,
    *,
    auth_enabled: bool,
    job_owner: str | None = None,
    token_channel: str | None = None,
) -> bool:
    """Subscribe (and read history). ``token_channel``: the channel a subscribe token opens.

    With auth on, every read needs a token: a public namespace is open to any user, not to
    anyone (a request without a token over SSE, say).
    """
    if not auth_enabled or token_channel == channel.full:
        return True
    if identity.user is None:
        return False
    if namespace.name == JOB_NAMESPACE:
        return identity.user == job_owner
    return identity.grants(channel) if namespace.private else True


def may_publish(
    namespace: Namespace, channel: Channel, identity: Identity, *, auth_enabled: bool
) -> bool:
    """Client publish; job channels are never client-writable (``publish`` is off for them)."""
    if not namespace.publish:
        return False
    if not auth_enabled or not namespace.private:
        return True
    return identity.grants(channel)
