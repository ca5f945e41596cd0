from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from gateway.access import api_key_valid, origin_allowed
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
        ({"host": "gw:8000", "origin": "http://["}, "", False),  # urlsplit raises on these
        ({"host": "gw:8000", "origin": "http://a]"}, "", False),
        ({"host": "gw:8000", "origin": "http://[::1"}, "", False),
        ({"host": "gw:8000", "origin": "http://["}, "http://app.example", False),
    ],
)
def test_origin_allowed(headers: dict[str, str], allowed: str, expected: bool) -> None:
    origins = Settings.from_env({"PUSHGATE_ALLOWED_ORIGINS": allowed}).auth.allowed_origins
    assert origin_allowed(scope(**headers), origins) is expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-api-key": "k2"}, True),
        ({"authorization": "apikey k1"}, True),
        ({"x-api-key": "k3"}, False),
        ({"x-api-key": "\xe9"}, False),  # compare_digest raises on non-ASCII str
        ({"authorization": "apikey \xe9\xff"}, False),
        ({"x-api-key": "\u00c3\u00a9"}, True),  # the UTF-8 bytes of a key "é", read as latin-1
        ({}, False),
    ],
)
def test_api_keys(headers: dict[str, str], expected: bool) -> None:
    raw = [(name.encode(), value.encode("latin-1")) for name, value in headers.items()]
    assert api_key_valid(Headers(raw=raw), ("k1", "k2", "\u00e9")) is expected
