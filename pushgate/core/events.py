"""A job's lifecycle: the events it publishes on its channel, its status, and its record.

Events are ``TypedDict``s, so they are plain JSON-ready dicts on the wire and typed in code.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, TypedDict


class JobStatus(StrEnum):
    """Where a job is; ``done`` and ``failed`` are final."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED)


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


class QueuedEvent(TypedDict):
    """The job was accepted and waits for a worker; always its channel's first event."""

    type: Literal["queued"]
    request_id: str
    url: str


class StartedEvent(TypedDict):
    """A worker took the job; ``attempt`` grows when a worker died and another took over."""

    type: Literal["started"]
    request_id: str
    url: str
    attempt: int


class ResultEvent(TypedDict):
    """Terminal: the page was fetched and its links extracted."""

    type: Literal["result"]
    request_id: str
    url: str
    final_url: str
    status_code: int
    title: str | None
    links: list[str]
    links_truncated: bool
    elapsed_ms: int


class Failure(TypedDict):
    """Why a job failed: a ``FailureCode`` and a message for people."""

    code: FailureCode
    message: str


class FailedEvent(TypedDict):
    """Terminal: the job failed for good (retries were spent or could not help)."""

    type: Literal["failed"]
    request_id: str
    error: Failure


Event = QueuedEvent | StartedEvent | ResultEvent | FailedEvent
TerminalEvent = ResultEvent | FailedEvent

TERMINAL_TYPES = frozenset({"result", "failed"})


def queued(request_id: str, url: str) -> QueuedEvent:
    return {"type": "queued", "request_id": request_id, "url": url}


def started(request_id: str, url: str, attempt: int) -> StartedEvent:
    return {"type": "started", "request_id": request_id, "url": url, "attempt": attempt}


def result(
    request_id: str,
    url: str,
    *,
    final_url: str,
    status_code: int,
    title: str | None,
    links: list[str],
    links_truncated: bool,
    elapsed_ms: int,
) -> ResultEvent:
    return {
        "type": "result",
        "request_id": request_id,
        "url": url,
        "final_url": final_url,
        "status_code": status_code,
        "title": title,
        "links": links,
        "links_truncated": links_truncated,
        "elapsed_ms": elapsed_ms,
    }


def failed(request_id: str, code: FailureCode, message: str) -> FailedEvent:
    return {"type": "failed", "request_id": request_id, "error": {"code": code, "message": message}}


def is_terminal(event: object) -> bool:
    """Whether a decoded event (any JSON value from a channel) ends its job."""
    return isinstance(event, dict) and event.get("type") in TERMINAL_TYPES


def status_after(event: Event) -> JobStatus | None:
    """The status a job has once ``event`` is published; None for ``queued`` (no change)."""
    match event["type"]:
        case "started":
            return JobStatus.RUNNING
        case "result":
            return JobStatus.DONE
        case "failed":
            return JobStatus.FAILED
        case _:
            return None


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job as stored: its url, owner, status and, once finished, its outcome."""

    request_id: str
    url: str
    status: JobStatus
    owner: str = ""
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.status.finished

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"request_id": self.request_id, "url": self.url}
        body["status"] = str(self.status)
        if self.result is not None:
            body["result"] = self.result
        if self.error is not None:
            body["error"] = self.error
        return body
