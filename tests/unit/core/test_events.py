"""Job events as typed dicts, and the status each one leaves a job in."""

from __future__ import annotations

import json

from pushgate.core import events
from pushgate.core.events import FailureCode, JobRecord, JobStatus


def test_every_event_is_plain_json() -> None:
    result = events.result(
        "r",
        "http://a/",
        final_url="http://a/",
        status_code=200,
        title=None,
        links=[],
        links_truncated=False,
        elapsed_ms=1,
    )
    failed = events.failed("r", FailureCode.TIMEOUT, "slow")
    for event in (events.queued("r", "http://a/"), events.started("r", "http://a/", 1)):
        assert json.loads(json.dumps(event)) == event
    assert json.loads(json.dumps(failed))["error"] == {"code": "timeout", "message": "slow"}
    assert json.loads(json.dumps(result))["type"] == "result"


def test_status_after_each_event() -> None:
    assert events.status_after(events.queued("r", "u")) is None
    assert events.status_after(events.started("r", "u", 2)) is JobStatus.RUNNING
    assert events.status_after(events.failed("r", FailureCode.HTTP_ERROR, "x")) is JobStatus.FAILED


def test_terminal_events_and_statuses() -> None:
    assert events.is_terminal({"type": "result"})
    assert events.is_terminal({"type": "failed"})
    assert not events.is_terminal({"type": "started"})
    assert not events.is_terminal(["failed"])
    assert {s for s in JobStatus if s.finished} == {JobStatus.DONE, JobStatus.FAILED}


def test_job_record_json_shows_the_outcome_it_has() -> None:
    record = JobRecord("r", "http://a/", JobStatus.FAILED, error={"code": "timeout"})
    assert record.finished
    assert record.to_json() == {
        "request_id": "r",
        "url": "http://a/",
        "status": "failed",
        "error": {"code": "timeout"},
    }
