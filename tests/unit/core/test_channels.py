from __future__ import annotations

import json

import pytest

from pushgate.core.channels import (
    Channel,
    ChannelNameError,
    Identity,
    Namespace,
    Namespaces,
    may_publish,
    may_subscribe,
    parse_channel,
)
from pushgate.core.settings import HistorySettings, SettingsError

CHAT = Namespace("chat", publish=True)
PRIVATE = Namespace("team", publish=True, private=True)
JOB = Namespace("job")
ALICE = Identity("alice")


def test_parse_channel() -> None:
    assert parse_channel("chat:room-1.a_b") == Channel("chat", "room-1.a_b")
    assert parse_channel("job:x").full == "job:x"
    for bad in ("chat", ":a", "Chat:a", "1ns:a", "chat:", "chat:a:b", "chat:a/b", 3, None):
        with pytest.raises(ChannelNameError):
            parse_channel(bad)


def test_namespaces_from_settings() -> None:
    raw = {"chat": {"publish": True, "history_size": 5, "history_ttl": 60}, "feed": {}}
    namespaces = Namespaces.from_settings(HistorySettings(size=7, namespaces=json.dumps(raw)))
    assert namespaces.get(Channel("chat", "a")) == Namespace("chat", True, False, 5, 60)
    assert namespaces.get(Channel("feed", "a")) == Namespace("feed")
    job = namespaces.get(Channel("job", "a"))
    assert job is not None
    assert job.history_size == 7
    assert not job.publish
    assert namespaces.get(Channel("other", "a")) is None


@pytest.mark.parametrize(
    "raw",
    [
        "{nope",
        "[]",
        '{"job": {}}',
        '{"Bad": {}}',
        '{"chat": []}',
        '{"chat": {"publish": "yes"}}',
        '{"chat": {"history_size": 0}}',
        '{"chat": {"history_size": true}}',
        '{"chat": {"colour": "red"}}',
    ],
)
def test_bad_namespace_config_is_a_settings_error(raw: str) -> None:
    with pytest.raises(SettingsError, match="PUSHGATE_NAMESPACES"):
        Namespaces.from_settings(HistorySettings(namespaces=raw))


def test_job_channels_are_readable_by_owner_or_token_only() -> None:
    channel = Channel("job", "j1")
    assert may_subscribe(JOB, channel, ALICE, auth_enabled=True, job_owner="alice")
    assert not may_subscribe(JOB, channel, Identity("bob"), auth_enabled=True, job_owner="alice")
    assert not may_subscribe(JOB, channel, Identity(None), auth_enabled=True, job_owner="")
    assert may_subscribe(JOB, channel, Identity(None), auth_enabled=True, token_channel="job:j1")
    assert not may_subscribe(JOB, channel, ALICE, auth_enabled=True, token_channel="job:j2")
    assert may_subscribe(JOB, channel, Identity(None), auth_enabled=False)


def test_public_namespaces_need_a_user_when_auth_is_on() -> None:
    room = Channel("chat", "a")
    assert may_subscribe(CHAT, room, ALICE, auth_enabled=True)
    assert not may_subscribe(CHAT, room, Identity(None), auth_enabled=True)
    assert may_subscribe(CHAT, room, Identity(None), auth_enabled=False)


def test_private_namespaces_need_the_channels_claim() -> None:
    room = Channel("team", "red")
    assert not may_subscribe(PRIVATE, room, ALICE, auth_enabled=True)
    assert may_subscribe(PRIVATE, room, Identity("a", ("team:red",)), auth_enabled=True)
    assert may_subscribe(PRIVATE, room, Identity("a", ("team:*",)), auth_enabled=True)
    assert not may_subscribe(PRIVATE, room, Identity("a", ("team:blue",)), auth_enabled=True)
    assert may_publish(PRIVATE, room, Identity("a", ("team:*",)), auth_enabled=True)
    assert not may_publish(PRIVATE, room, ALICE, auth_enabled=True)


def test_publish_needs_the_namespace_to_allow_it() -> None:
    assert may_publish(CHAT, Channel("chat", "a"), ALICE, auth_enabled=True)
    assert not may_publish(JOB, Channel("job", "a"), ALICE, auth_enabled=True)
    assert not may_publish(JOB, Channel("job", "a"), ALICE, auth_enabled=False)
    assert not may_publish(Namespace("feed"), Channel("feed", "a"), ALICE, auth_enabled=False)
