"""``pushgate gateway``'s options and its answer to signals, without serving."""

from __future__ import annotations

import signal

import pytest
from starlette.types import Receive, Scope, Send

from gateway.delivery.connections import Connections
from gateway.server import SHUTDOWN_TIMEOUT_SECONDS, DrainingServer, ServerOptions
from gateway.wsprotocol import LeanWebSocketProtocol
from pushgate.cli.main import main


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("never served here")


def test_options_default_to_what_the_deploy_files_passed() -> None:
    config = ServerOptions().config(app)
    assert (config.host, config.port) == ("127.0.0.1", 8000)
    assert config.ws_per_message_deflate is False
    assert (config.ws_ping_interval, config.ws_ping_timeout) == (20.0, 20.0)
    assert config.access_log is False
    assert config.timeout_graceful_shutdown == SHUTDOWN_TIMEOUT_SECONDS
    assert config.ws is LeanWebSocketProtocol


def test_ws_names_pushgates_protocol_or_uvicorns() -> None:
    assert ServerOptions(ws="lean").config(app).ws is LeanWebSocketProtocol
    assert ServerOptions(ws="websockets-sansio").config(app).ws == "websockets-sansio"


def test_ws_accepts_only_the_two_protocols(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["gateway", "--ws", "wsproto"])
    assert "invalid choice" in capsys.readouterr().err


def test_signals_drain_then_stop_then_force() -> None:
    connections = Connections(limit=1)
    server = DrainingServer(ServerOptions().config(app), connections, 10.0)
    server.handle_exit(signal.SIGTERM, None)
    assert connections.draining
    assert not server.should_exit  # the drain decides when
    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit
    assert not server.force_exit
    server.handle_exit(signal.SIGINT, None)
    assert server.force_exit


def test_a_bad_setting_stops_the_command_before_it_binds(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PUSHGATE_DRAIN_SECONDS", "soon")
    assert main(["gateway", "--port", "1"]) == 1
    assert "PUSHGATE_DRAIN_SECONDS" in capsys.readouterr().err
