"""The lifecycle events a job publishes on its channel, as plain JSON-ready dicts."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

Event = dict[str, Any]

TERMINAL_TYPES = frozenset({"result", "failed"})


class FailureCode(StrEnum):
    """Why a scrape failed; the ``error.code`` of a ``failed`` event."""

    INVALID_URL = "invalid_url"
    BLOCKED_ADDRESS = "blocked_address"
    DNS_ERROR = "dns_error"
    CONNECT_ERROR = "connect_error"
    TIMEOUT = "timeout"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    TOO_LARGE = "too_large"
    NOT_HTML = "not_html"
    HTTP_ERROR = "http_error"
    # The worker hit an error of its own; the message says nothing of its internals.
    INTERNAL_ERROR = "internal_error"
    # Every try ended without an outcome: its workers died, froze or lost Redis mid-job.
    WORKER_LOST = "worker_lost"


def queued(request_id: str, url: str) -> Event:
    return {"type": "queued", "request_id": request_id, "url": url}


def started(request_id: str, url: str, attempt: int) -> Event:
    return {"type": "started", "request_id": request_id, "url": url, "attempt": attempt}


def result(
    request_id: str,
    url: str,
    *,
    final_url: str,
    status_code: int,
    title: str | None,
    links: list[str],
    elapsed_ms: int,
) -> Event:
    return {
        "type": "result",
        "request_id": request_id,
        "url": url,
        "final_url": final_url,
        "status_code": status_code,
        "title": title,
        "links": links,
        "elapsed_ms": elapsed_ms,
    }


def failed(request_id: str, code: FailureCode, message: str) -> Event:
    return {"type": "failed", "request_id": request_id, "error": {"code": code, "message": message}}


def is_terminal(event: object) -> bool:
    return isinstance(event, dict) and event.get("type") in TERMINAL_TYPES
