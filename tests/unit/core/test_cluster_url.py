"""The redis+cluster:// broker URL: seeds and credentials read, every problem named."""

from __future__ import annotations

import pytest

from pushgate.cli.ops import config_problems
from pushgate.core.redis_url import ClusterUrl, is_cluster_url, parse_cluster_url
from pushgate.core.settings import Settings, SettingsError

SECRET = "x" * 32


def test_seeds_and_credentials_are_read() -> None:
    parsed = parse_cluster_url("redis+cluster://:s%40cret@h1:7000,h2,[::1]:7002")
    assert parsed == ClusterUrl((("h1", 7000), ("h2", 6379), ("::1", 7002)), None, "s@cret")
    assert parsed.node_url("::1", 7002) == "redis://:s%40cret@[::1]:7002/0"
    assert ClusterUrl((("h", 1),)).node_url("h", 1) == "redis://h:1/0"
    assert is_cluster_url("REDIS+CLUSTER://h:1") and not is_cluster_url("redis://h:1")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+cluster://", "no seed node host"),
        ("redis+cluster://h:1,,h:2", "an empty seed node address"),
        ("redis+cluster://h:99999", "the port is not a number from 1 to 65535"),
        ("redis+cluster://h:1/0", "a cluster URL has no path"),
        ("redis+cluster://h:1?x=1", "query options"),
    ],
)
def test_every_problem_is_named(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_cluster_url(url)


def test_the_broker_list_holds_one_cluster_url_with_its_seeds() -> None:
    settings = Settings.from_env({"PUSHGATE_BROKER_URLS": "redis+cluster://:pw@h1:1,h2:2"})
    assert settings.cluster_url == "redis+cluster://:pw@h1:1,h2:2"
    assert "pw" in settings.secrets
    settings.validate_brokers()
    assert Settings.from_env({"PUSHGATE_BROKER_URLS": "redis://a:1/0"}).cluster_url is None


def test_a_cluster_url_after_a_shard_is_refused() -> None:
    settings = Settings.from_env({"PUSHGATE_BROKER_URLS": "redis://a:1/0,redis+cluster://h:1"})
    with pytest.raises(SettingsError, match="must be the only broker URL"):
        settings.validate_brokers()


def test_check_config_names_cluster_problems_and_a_cluster_queue() -> None:
    environ = {
        "PUSHGATE_JWT_SECRET": SECRET,
        "PUSHGATE_BROKER_URLS": "redis+cluster://h:0,h2",
        "PUSHGATE_REDIS_URL": "redis+cluster://:pw@q:1",
    }
    problems = config_problems(environ)
    assert len(problems) == 2, problems
    assert problems[0].startswith("PUSHGATE_BROKER_URLS: seed node address 'h:0'")
    assert "PUSHGATE_REDIS_URL='redis+cluster://:***@q:1'" in problems[1]
    assert "not a cluster" in problems[1] and "pw" not in problems[1]
