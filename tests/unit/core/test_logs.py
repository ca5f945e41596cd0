"""Log lines: JSON or text, with the known fields, and never a secret."""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

import arq
import jwt
import uvicorn

from pushgate.core.logs import (
    FOREIGN_LOGGERS,
    REDACTED,
    JsonFormatter,
    Redactor,
    TextFormatter,
    channel_fields,
)

SECRET = "k" * 40
TOKEN = jwt.encode({"sub": "ann"}, SECRET, algorithm="HS256")


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("gateway.hub", logging.WARNING, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def test_json_line_has_time_level_logger_message_and_known_fields() -> None:
    line = JsonFormatter(Redactor()).format(
        record("subscribe of %s failed", "chat", request_id="r1", channel="chat", other="x")
    )
    parsed = json.loads(line)
    assert parsed["level"] == "warning"
    assert parsed["logger"] == "gateway.hub"
    assert parsed["message"] == "subscribe of chat failed"
    assert parsed["request_id"] == "r1" and parsed["channel"] == "chat"
    assert "other" not in parsed
    assert parsed["ts"].endswith("Z") and "T" in parsed["ts"]


def test_json_line_carries_the_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        failed = record("it broke")
        failed.exc_info = sys.exc_info()
    parsed = json.loads(JsonFormatter(Redactor()).format(failed))
    assert "ValueError: boom" in parsed["exc"]


def test_text_line_is_readable_with_fields() -> None:
    line = TextFormatter(Redactor()).format(record("job started", request_id="r1", attempt=2))
    assert line.endswith("WARNING gateway.hub: job started request_id=r1 attempt=2")


def test_secrets_tokens_and_keys_never_reach_a_line() -> None:
    redact = Redactor([SECRET, "api-key-1"])
    lines = [
        f'127.0.0.1:5 - "GET /ws/jobs/r1?token={TOKEN} HTTP/1.1" 101',
        "GET /sse?channel=job:r1&token=opaque-value&x=1",
        f"bad token {TOKEN}",
        f"secret is {SECRET} and key api-key-1",
    ]
    for line in lines:
        for formatter in (JsonFormatter(redact), TextFormatter(redact)):
            out = formatter.format(record("%s", line))
            assert TOKEN not in out and SECRET not in out and "api-key-1" not in out
            assert "opaque-value" not in out
            assert REDACTED in out


def test_secrets_in_fields_never_reach_a_line() -> None:
    redact = Redactor([SECRET])
    leaky = record("rpc failed", client=f"c?token={TOKEN}", method=SECRET, request_id="r1")
    for formatter in (JsonFormatter(redact), TextFormatter(redact)):
        out = formatter.format(leaky)
        assert TOKEN not in out and SECRET not in out
        assert "request_id=r1" in out or json.loads(out)["request_id"] == "r1"


def test_channel_fields_name_the_namespace_never_the_channel() -> None:
    assert channel_fields("chat:ann-and-bob") == {"channel": "chat"}
    assert channel_fields("job:r1") == {"channel": "job", "request_id": "r1"}


def test_every_logger_of_uvicorn_and_arq_is_routed() -> None:
    names: set[str] = set()
    for package in (uvicorn, arq):
        for source in Path(package.__file__ or "").parent.rglob("*.py"):
            names |= set(re.findall(r"getLogger\(['\"]([\w.]+)['\"]\)", source.read_text()))
    assert names, "no logger names found"
    assert names <= set(FOREIGN_LOGGERS)
