from __future__ import annotations

import pytest

from pushgate.core.settings import Settings, SettingsError


def test_defaults_without_environment() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.allow_private_addresses is False


def test_reads_prefixed_variables_with_types() -> None:
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
    assert settings.allow_private_addresses is True
    assert settings.fetch_timeout == 2.5
    assert settings.history_size == 7


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
    settings = Settings(fetch_timeout=10, fetch_retries=2, fetch_retry_backoff=1)
    # three attempts, backoffs of 1 s and 2 s, and 10 s for parsing and publishing
    assert settings.job_timeout == 3 * 10 + 1 + 2 + 10
    assert [settings.retry_delay(n) for n in (1, 2, 3, 10)] == [1, 2, 4, 10]


def test_job_timeout_seconds_overrides_the_derived_bound() -> None:
    assert Settings(fetch_timeout=10, job_timeout_seconds=1.5).job_timeout == 1.5


@pytest.mark.parametrize("lease", [0.0, -1.0])
def test_a_worker_needs_a_lease_it_can_renew(lease: float) -> None:
    with pytest.raises(SettingsError, match="PUSHGATE_WORKER_LEASE_SECONDS"):
        Settings(worker_lease_seconds=lease).validate_worker()
