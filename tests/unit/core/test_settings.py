from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import pytest

from pushgate.core.settings import (
    SETTINGS_GROUPS,
    FetchSettings,
    Settings,
    SettingsError,
    WorkerPoolSettings,
    read_settings,
    redacted_url,
    variable_names,
)


def test_defaults_without_environment() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.fetch.allow_private_addresses is False


def testread_settingss_prefixed_variables_with_types() -> None:
    settings = Settings.from_env(
        {
            "PUSHGATE_REDIS_URL": "redis://r:1/2",
            "PUSHGATE_ALLOW_PRIVATE_ADDRESSES": "TRUE",
            "PUSHGATE_FETCH_TIMEOUT": "2.5",
            "PUSHGATE_HISTORY_SIZE": " 7 ",
            "UNRELATED": "x",
        }
    )
    assert settings.redis_url == "redis://r:1/2"
    assert settings.fetch.allow_private_addresses is True
    assert settings.fetch.timeout == 2.5
    assert settings.history.size == 7


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PUSHGATE_ALLOW_PRIVATE_ADDRESSES", "maybe"),
        ("PUSHGATE_HISTORY_SIZE", "1.5"),
        ("PUSHGATE_HISTORY_SIZE", "0"),
        ("PUSHGATE_FETCH_TIMEOUT", "soon"),
        ("PUSHGATE_FETCH_RETRIES", "-1"),
        ("PUSHGATE_WS_QUEUE_SIZE", "0"),
    ],
)
def test_rejects_bad_values_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_job_timeout_covers_every_attempt_and_backoff() -> None:
    fetch = FetchSettings(timeout=10, retries=2, retry_backoff=1)
    # three attempts, backoffs of 1 s and 2 s, and 10 s for parsing and publishing
    assert fetch.worst_case == 3 * 10 + 1 + 2 + 10
    assert Settings(fetch=fetch).job_timeout == fetch.worst_case
    assert [fetch.retry_delay(n) for n in (1, 2, 3, 10)] == [1, 2, 4, 10]


def test_groups_and_lists_are_parsed_once() -> None:
    settings = Settings.from_env(
        {
            "PUSHGATE_ALLOWED_ORIGINS": " https://a.example/ , ,https://b.example",
            "PUSHGATE_API_KEYS": "k1,k2",
            "PUSHGATE_AUTH_DISABLED": "yes",
            "PUSHGATE_WORKER_CONCURRENCY": "3",
            "PUSHGATE_JOB_TTL_SECONDS": "60",
            "PUSHGATE_DRAIN_SECONDS": "2.5",
        }
    )
    assert settings.auth.allowed_origins == ("https://a.example/", "https://b.example")
    assert settings.auth.api_keys == ("k1", "k2")
    assert settings.auth.enabled is False
    assert settings.pool.concurrency == 3
    assert settings.history.job_ttl == 60
    assert settings.gateway.drain_seconds == 2.5
    assert Settings().gateway.drain_seconds == 10


def test_every_field_names_its_own_variable() -> None:
    names: list[str] = []
    for group in (Settings, *SETTINGS_GROUPS):
        names += [f.metadata["env"] for f in fields(group) if "env" in f.metadata]
    assert len(names) == len(set(names))
    assert len(names) > 30


def test_a_setting_of_an_unreadable_type_fails_at_start() -> None:
    @dataclass(frozen=True)
    class Odd:
        when: complex = field(default=0j, metadata={"env": "WHEN", "positive": False})

    with pytest.raises(SettingsError, match="PUSHGATE_WHEN"):
        read_settings(Odd, {}, [])


def test_every_bad_value_is_named_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"PUSHGATE_HISTORY_SIZE": "0", "PUSHGATE_FETCH_TIMEOUT": "soon"})
    assert str(caught.value).splitlines() == [
        "PUSHGATE_HISTORY_SIZE must be at least 1",
        "PUSHGATE_FETCH_TIMEOUT='soon' is not a valid float",
    ]


def test_variable_names_cover_every_field() -> None:
    fields_read = [
        f for g in (Settings, *SETTINGS_GROUPS) for f in fields(g) if "env" in f.metadata
    ]
    assert len(variable_names()) == len(fields_read)
    assert {"PUSHGATE_REDIS_URL", "PUSHGATE_JWT_SECRET", "PUSHGATE_MAX_LINKS"} <= variable_names()


def test_job_timeout_seconds_overrides_the_derived_bound() -> None:
    pool = WorkerPoolSettings(job_timeout_seconds=1.5)
    assert Settings(fetch=FetchSettings(timeout=10), pool=pool).job_timeout == 1.5


@pytest.mark.parametrize("lease", ["0", "-1", "0.5"])
def test_a_worker_needs_a_lease_it_can_renew(lease: str) -> None:
    with pytest.raises(SettingsError, match="PUSHGATE_WORKER_LEASE_SECONDS"):
        Settings.from_env({"PUSHGATE_WORKER_LEASE_SECONDS": lease})


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        (
            {"PUSHGATE_RPC_ROUTES": "app:ROUTES", "PUSHGATE_RPC_PROXY_URL": "http://app/rpc"},
            "not both",
        ),
        ({"PUSHGATE_RPC_PROXY_URL": "app.internal/rpc"}, "not an absolute http(s) URL"),
        ({"PUSHGATE_RPC_PROXY_URL": "ftp://app.internal/rpc"}, "not an absolute http(s) URL"),
    ],
)
def test_rpc_settings_that_cannot_work_are_refused(environ: dict[str, str], says: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(says)):
        Settings.from_env(environ).rpc.validate()


def test_rpc_settings_that_can_work_pass() -> None:
    Settings.from_env({"PUSHGATE_RPC_PROXY_URL": "https://app.internal:8443/rpc"}).rpc.validate()
    Settings().rpc.validate()


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    first_cells = re.findall(r"^\| (`PUSHGATE_.*?) \|", readme, re.M)  # some name two
    documented = {name for cell in first_cells for name in re.findall(r"`(\w+)`", cell)}
    assert variable_names() <= documented


def test_broker_urls_default_to_the_one_redis() -> None:
    settings = Settings.from_env({"PUSHGATE_REDIS_URL": "redis://q:1/0"})
    assert settings.broker_urls == ()
    assert settings.shard_urls == ("redis://q:1/0",)
    assert settings.ready_with_shards_down is False
    settings.validate_brokers()


def test_broker_urls_are_the_shards_in_order() -> None:
    settings = Settings.from_env(
        {
            "PUSHGATE_BROKER_URLS": "redis://a:1/0, redis://:pw@b:2/0,rediss://c:3/0",
            "PUSHGATE_READY_WITH_SHARDS_DOWN": "true",
        }
    )
    assert settings.shard_urls == ("redis://a:1/0", "redis://:pw@b:2/0", "rediss://c:3/0")
    assert settings.ready_with_shards_down is True
    assert "pw" in settings.secrets
    settings.validate_brokers()


@pytest.mark.parametrize(
    ("urls", "problem"),
    [
        ("http://a:1/0", "is not a redis/rediss/unix:// URL"),
        ("redis://a:1/0,redis://a:1/0", "listed twice"),
        ("redis://a:port/0", "Port could not be cast"),
        ("redis:///0", "names no server"),
    ],
)
def test_bad_broker_urls_are_named(urls: str, problem: str) -> None:
    settings = Settings.from_env({"PUSHGATE_BROKER_URLS": urls})
    with pytest.raises(SettingsError, match="PUSHGATE_BROKER_URLS") as raised:
        settings.validate_brokers()
    assert problem in str(raised.value)


def test_redacted_url_hides_only_the_password() -> None:
    assert redacted_url("redis://:secret@h:1/0") == "redis://***@h:1/0"
    assert redacted_url("redis://ann:secret@h:1/0") == "redis://ann:***@h:1/0"
    assert redacted_url("redis://h:1/0") == "redis://h:1/0"
