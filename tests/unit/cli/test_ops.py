"""The operator's verbs: token, check-config, version."""

from __future__ import annotations

import jwt
import pytest

from pushgate.cli.main import main
from pushgate.cli.ops import _shards_cell, _status_row, check_config, config_problems, token
from pushgate.core.auth import Authenticator
from pushgate.core.settings import AuthSettings

SECRET = "s" * 32


def test_token_is_accepted_by_a_gateway_with_the_same_secret(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert token({"PUSHGATE_JWT_SECRET": SECRET}, "ann", ("team:*",), ttl=60) == 0
    minted = capsys.readouterr().out.strip()
    identity = Authenticator(AuthSettings(jwt_secret=(SECRET,))).identify(minted)
    assert identity.user == "ann"
    assert identity.channels == ("team:*",)
    assert identity.expires_at is not None
    claims = jwt.decode(minted, SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 60


def test_token_without_ttl_never_expires(capsys: pytest.CaptureFixture[str]) -> None:
    assert token({"PUSHGATE_JWT_SECRET": SECRET}, "bob", (), ttl=0) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), SECRET, algorithms=["HS256"])
    assert "exp" not in claims and "channels" not in claims


def test_token_needs_the_secret(capsys: pytest.CaptureFixture[str]) -> None:
    assert token({}, "ann", (), ttl=60) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "PUSHGATE_JWT_SECRET is not set" in captured.err


def test_check_config_lists_every_problem(capsys: pytest.CaptureFixture[str]) -> None:
    environ = {
        "PUSHGATE_HISTORY_SIZE": "0",
        "PUSHGATE_JWT_SECERT": SECRET,
        "PUSHGATE_REDIS_URL": "http://redis:6379",
        "PUSHGATE_NAMESPACES": "{not json",
        "PUSHGATE_TOKEN": "a client variable",
    }
    assert check_config(environ) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5
    assert lines[0] == "PUSHGATE_HISTORY_SIZE must be at least 1"
    assert lines[1] == "PUSHGATE_JWT_SECERT is not a pushgate setting (a typo?)"
    assert lines[2].startswith("authentication needs PUSHGATE_JWT_SECRET")
    assert "PUSHGATE_NAMESPACES" in lines[3]
    assert lines[4].startswith("PUSHGATE_REDIS_URL='http://redis:6379'")


def test_check_config_passes_a_good_environment(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_config({"PUSHGATE_JWT_SECRET": SECRET, "PUSHGATE_MAX_LINKS": "50"}) == 0
    assert capsys.readouterr().out == "configuration OK\n"


def test_check_config_flags_a_short_secret() -> None:
    assert config_problems({"PUSHGATE_JWT_SECRET": "short"}) == [
        "PUSHGATE_JWT_SECRET: a secret shorter than 32 bytes"
    ]


def test_version_names_pushgate_and_its_stack(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("pushgate 0.1.0 (python 3.")
    assert "  uvicorn 0." in out and "  redis 5." in out


def test_negative_ttl_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as caught:
        main(["token", "--sub", "ann", "--ttl", "-1"])
    assert caught.value.code == 2


@pytest.mark.parametrize(
    ("rpc", "problem"),
    [
        ({"PUSHGATE_RPC_ROUTES": "tests.no_such_module:ROUTES"}, "cannot import"),
        ({"PUSHGATE_RPC_ROUTES": "tests.rpc_routes:whoami"}, "must be a dict"),
        ({"PUSHGATE_RPC_PROXY_URL": "app/rpc"}, "not an absolute http(s) URL"),
    ],
)
def test_check_config_loads_the_rpc_routes_as_a_gateway_would(
    rpc: dict[str, str], problem: str
) -> None:
    (found,) = config_problems({"PUSHGATE_JWT_SECRET": SECRET, **rpc})
    assert problem in found


def test_check_config_passes_routes_that_load() -> None:
    routes = {"PUSHGATE_RPC_ROUTES": "tests.rpc_routes:ROUTES"}
    assert config_problems({"PUSHGATE_JWT_SECRET": SECRET, **routes}) == []


def test_check_config_lists_bad_broker_urls() -> None:
    environ = {"PUSHGATE_JWT_SECRET": SECRET, "PUSHGATE_BROKER_URLS": "redis://a:1/0,a:2"}
    [problem] = config_problems(environ)
    assert problem.startswith("PUSHGATE_BROKER_URLS: ")
    assert "'a:2' is not a redis/rediss/unix:// URL" in problem


def test_status_row_names_the_shards_that_are_down() -> None:
    answer = {
        "redis": {"address": "q:6379", "ok": True, "pubsub": False, "queue_depth": 0},
        "draining": False,
        "version": "0.1.0",
        "uptime_seconds": 5.0,
        "connections": {"open": 1, "ws": 1},
        "channels": 2,
        "subscriptions": 3,
        "shards": [{"index": 0, "up": True}, {"index": 1, "up": False}, {"index": 2, "up": False}],
    }
    assert _status_row("http://g", answer)[-1] == "1/3 up, down: 1 2"


def test_status_row_names_a_down_cluster_master_by_address() -> None:
    shards = [
        {"index": 0, "address": "10.0.0.5:7000", "up": True},
        {"index": 1, "address": "10.0.0.6:7000", "up": False},
    ]
    assert _shards_cell(shards) == "1/2 up, down: 1 (10.0.0.6:7000)"
