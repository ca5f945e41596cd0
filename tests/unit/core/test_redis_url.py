"""The redis+sentinel:// URL: every part read, every problem named (check-config lists them)."""

from __future__ import annotations

import re

import pytest

from pushgate.cli.ops import config_problems
from pushgate.core.redis_url import SentinelUrl, is_sentinel_url, parse_sentinel_url
from pushgate.core.settings import Settings, SettingsError


def test_every_part_is_read() -> None:
    url = "redis+sentinel://user:s%40cret@h1,h2:26380,[::1]:7/my%20master/2"
    assert parse_sentinel_url(url) == SentinelUrl(
        sentinels=(("h1", 26379), ("h2", 26380), ("::1", 7)),
        master_name="my master",
        db=2,
        username="user",
        password="s@cret",
    )


def test_a_password_alone_and_the_default_db() -> None:
    parsed = parse_sentinel_url("redis+sentinel://:pw@10.0.0.1:26379/queue")
    assert (parsed.username, parsed.password, parsed.db) == (None, "pw", 0)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+sentinel://h1:26379,h2:26379", "no master name"),
        ("redis+sentinel://h1:26379/", "no master name"),
        ("redis+sentinel://h1:99999/m", "'h1:99999': the port is not a number from 1 to 65535"),
        ("redis+sentinel://h1:x/m", "'h1:x': the port is not a number"),
        ("redis+sentinel://h1,,h2/m", "an empty sentinel address"),
        ("redis+sentinel:///m", "no sentinel host"),
        ("redis+sentinel://h1/m/x", "the db 'x' is not a number"),
        ("redis+sentinel://h1/m/0/extra", "nothing after the db"),
        ("redis+sentinel://h1/m?ssl=1", "query options"),
        ("rediss+sentinel://h1/m", "rediss+sentinel:// is not supported"),
    ],
)
def test_each_problem_is_named(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        parse_sentinel_url(url)


def test_every_problem_at_once_in_check_config_without_the_password() -> None:
    env = {"PUSHGATE_AUTH_DISABLED": "true", "PUSHGATE_REDIS_URL": "redis+sentinel://:pw@h:0/"}
    problems = config_problems(env)
    assert len(problems) == 2
    assert all(p.startswith("PUSHGATE_REDIS_URL='redis+sentinel://:***@h:0/'") for p in problems)
    assert config_problems({**env, "PUSHGATE_REDIS_URL": "redis+sentinel://h/m"}) == []


def test_a_gateway_or_worker_refuses_to_start_on_a_bad_url() -> None:
    with pytest.raises(SettingsError, match="no master name"):
        Settings.from_env({"PUSHGATE_REDIS_URL": "redis+sentinel://h1"})


def test_waiting_for_replicas_applies_behind_sentinel_only() -> None:
    assert Settings.from_env({"PUSHGATE_REDIS_URL": "redis+sentinel://h/m"}).wait_replicas == 1
    assert Settings.from_env({"PUSHGATE_REDIS_URL": "redis://h:6379/0"}).wait_replicas == 0
    off = {"PUSHGATE_REDIS_URL": "redis+sentinel://h/m", "PUSHGATE_REDIS_WAIT_REPLICAS": "0"}
    assert Settings.from_env(off).wait_replicas == 0
    assert is_sentinel_url("REDIS+SENTINEL://h/m") and not is_sentinel_url("redis://h")
