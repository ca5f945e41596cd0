"""The CLI's pure parts: where to connect, --since and JSON arguments, usage errors."""

from __future__ import annotations

import pytest

from pushgate.cli.main import main
from pushgate.cli.verbs import Target, UsageError, parse_json, parse_since, websocket_url
from pushgate.client import Position


@pytest.mark.parametrize(
    ("gateway", "expected"),
    [
        ("http://127.0.0.1:8000", "ws://127.0.0.1:8000/ws"),
        ("https://push.example.com/", "wss://push.example.com/ws"),
        ("https://example.com/pushgate", "wss://example.com/pushgate/ws"),
        ("ws://h:1", "ws://h:1/ws"),
    ],
)
def test_websocket_url(gateway: str, expected: str) -> None:
    assert websocket_url(gateway) == expected


@pytest.mark.parametrize("gateway", ["127.0.0.1:8000", "ftp://h", "http://", ""])
def test_websocket_url_rejects_what_is_no_gateway(gateway: str) -> None:
    with pytest.raises(UsageError):
        websocket_url(gateway)


def test_target_prefers_options_then_environment_then_defaults() -> None:
    env = {"PUSHGATE_GATEWAY_URL": "http://env:1", "PUSHGATE_TOKEN": "env-token"}
    assert Target.resolve("http://opt:2", "opt-token", env) == Target("ws://opt:2/ws", "opt-token")
    assert Target.resolve(None, None, env) == Target("ws://env:1/ws", "env-token")
    assert Target.resolve(None, None, {}) == Target("ws://127.0.0.1:8000/ws", None)


def test_parse_since() -> None:
    assert parse_since("1700000000000-0:1700000000123-4") == Position(
        "1700000000000-0", "1700000000123-4"
    )


@pytest.mark.parametrize("text", ["", "5-0", "a:b", "1-0:", ":1-0", "1-0:2-0:3-0"])
def test_parse_since_rejects_malformed(text: str) -> None:
    with pytest.raises(UsageError):
        parse_since(text)


def test_parse_json() -> None:
    assert parse_json('{"a": [1, null]}') == {"a": [1, None]}
    with pytest.raises(UsageError):
        parse_json("{nope")


@pytest.mark.parametrize(
    "argv",
    [
        ["publish", "chat:a", "{nope"],
        ["subscribe", "chat:a", "--since", "yesterday"],
        ["submit", "https://example.com/", "--gateway", "example.com:80"],
        ["submit"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage: pushgate" in capsys.readouterr().err
