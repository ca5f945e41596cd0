from __future__ import annotations

import pytest

from gateway.access import origin_allowed
from pushgate.core.settings import Settings


def scope(**headers: str) -> dict[str, object]:
    return {"headers": [(k.encode(), v.encode()) for k, v in headers.items()]}


@pytest.mark.parametrize(
    ("headers", "allowed", "expected"),
    [
        ({"host": "gw:8000"}, "", True),  # no Origin: not a browser
        ({"host": "gw:8000", "origin": "http://gw:8000"}, "", True),  # same origin
        ({"host": "gw:8000", "origin": "http://evil.example"}, "", False),
        ({"host": "gw:8000", "origin": "http://app.example"}, "http://app.example/", True),
        ({"host": "gw:8000", "origin": "http://app.example"}, "https://app.example", False),
        ({"host": "gw:8000", "origin": "http://gw:8000"}, "http://app.example", False),
        ({"host": "gw:8000", "origin": "http://anything"}, " * ", True),
        ({"host": "gw:8000", "origin": "null"}, "", False),
    ],
)
def test_origin_allowed(headers: dict[str, str], allowed: str, expected: bool) -> None:
    origins = Settings.from_env({"PUSHGATE_ALLOWED_ORIGINS": allowed}).auth.allowed_origins
    assert origin_allowed(scope(**headers), origins) is expected
