"""One log line per event, as JSON (``PUSHGATE_LOG_FORMAT=json``) or readable text.

Gateways and workers route their own loggers and uvicorn's and arq's through the same handler.
Fields beyond the message come from ``extra=`` (only the names in ``FIELDS``: ``channel`` is a
namespace, never a channel name, which may name a person; ``channel_fields`` makes them).
Secrets never reach the output: tokens in URLs (uvicorn's access log shows query strings),
anything shaped like a JWT, and the values of the secret settings are replaced before a line is
written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable

from pushgate.core.channels import JOB_NAMESPACE, Channel, parse_channel
from pushgate.core.errors import CloseCode

FIELDS = ("request_id", "client", "transport", "channel", "shard", "code", "method", "attempt")
# Every logger the servers we run inside write to (a logger's filters see only its own records).
FOREIGN_LOGGERS = (
    "uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi",
    "arq", "arq.worker", "arq.jobs", "arq.connections", "arq.utils", "arq.cron", "arq.cli",
)  # fmt: skip
# A socket's ordinary ends: the client left (1005: it gave no code; 1006: it vanished), it was
# done, or a drain moved it. One line per connection at info would follow connection churn.
_ROUTINE_CLOSES = frozenset(
    {CloseCode.NORMAL, CloseCode.GOING_AWAY, CloseCode.SERVICE_RESTART, 1005, 1006}
)
REDACTED = "[redacted]"
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_TOKEN_IN_QUERY = re.compile(r"((?:^|[?&\s])(?:token|api_key|apikey)=)[^&\s\"']+", re.IGNORECASE)


class Redactor:
    """Replaces secrets in a formatted line: JWTs, ``token=`` query values, configured keys."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        text = _TOKEN_IN_QUERY.sub(lambda m: m[1] + REDACTED, text)
        return _JWT.sub(REDACTED, text)


class JsonFormatter(logging.Formatter):
    """A JSON object per line: time, level, logger, message, the known fields, the traceback."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        # Redacted value by value: a replacement inside the encoded line could break its JSON.
        clean = {key: self._redact(v) if isinstance(v, str) else v for key, v in line.items()}
        return json.dumps(clean, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``HH:MM:SS LEVEL logger: message key=value ...``, for people at a terminal."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = " ".join(f"{key}={value}" for key, value in _fields(record).items())
        if fields:
            first, newline, rest = text.partition("\n")
            text = f"{first} {fields}{newline}{rest}"
        return self._redact(text)


def configure(log_format: str, level: str, secrets: Iterable[str] = ()) -> None:
    """Send every log line of this process, ours and the servers', through one handler."""
    redact = Redactor(secrets)
    formatter = JsonFormatter(redact) if log_format == "json" else TextFormatter(redact)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in FOREIGN_LOGGERS:
        logger = logging.getLogger(name)
        logger.filters[:] = [_ToRoot()]


class _ToRoot(logging.Filter):
    """Hands a server's records to the root handler instead of the logger's own.

    uvicorn and arq install their handlers with ``dictConfig``, arq's only after it has imported
    our settings; ``dictConfig`` replaces a logger's handlers but keeps its filters, so a filter
    is what still holds once they have started.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        for handler in logging.getLogger().handlers:
            if record.levelno >= handler.level:
                handler.handle(record)
        return False  # the logger's own handlers, and propagation, never see it


def channel_fields(channel: Channel | str) -> dict[str, object]:
    """The fields of a line about ``channel``: its namespace, and for a job's channel the
    request id (which is all its name is); never the name itself."""
    parsed = channel if isinstance(channel, Channel) else parse_channel(channel)
    if parsed.namespace == JOB_NAMESPACE:
        return {"channel": JOB_NAMESPACE, "request_id": parsed.name}
    return {"channel": parsed.namespace}


def close_level(code: int) -> int:
    """The level of a socket's closing line: debug for a routine end, info for a close with a
    reason (a slow consumer, a refused token, an oversized frame, an outage, ...)."""
    return logging.DEBUG if code in _ROUTINE_CLOSES else logging.INFO


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {name: record.__dict__[name] for name in FIELDS if name in record.__dict__}


def _timestamp(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"
