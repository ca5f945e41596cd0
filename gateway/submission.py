"""Submitting and reading jobs, shared by the HTTP API and the realtime protocol."""

from __future__ import annotations

import logging
from typing import Any

from gateway.services import Services
from pushgate.broker import jobqueue
from pushgate.core.channels import Identity
from pushgate.core.errors import ErrorKind, PushgateError
from pushgate.core.events import JobRecord, JobStatus
from pushgate.core.logs import channel_fields
from pushgate.core.wire import job_channel, job_ws_path

log = logging.getLogger(__name__)


class JobConflictError(PushgateError):
    """The request id is taken by a job for another url, or another user's."""

    def __init__(self, request_id: str) -> None:
        super().__init__(ErrorKind.CONFLICT, f"request_id {request_id!r} is taken by another job")


async def submit_job(
    svc: Services, request_id: str, url: str, identity: Identity, *, transport: str = "http"
) -> tuple[bool, JobRecord]:
    """Create the job (or find it) and make sure it is queued; returns (created, job).

    ``transport`` (``http`` or ``ws_rpc``) labels the count of jobs submitted."""
    created, job = await svc.backend.create_job(request_id, url, identity.user or "")
    if created:
        svc.metrics.jobs_submitted.labels(transport).inc()
        fields = {**channel_fields(job_channel(request_id)), "transport": transport}
        log.info("job submitted", extra=fields)
    # Someone else's job is a conflict even for the same url: it would hand out their token.
    if job.url != url or (svc.auth.enabled and job.owner != (identity.user or "")):
        raise JobConflictError(request_id)
    if job.status is JobStatus.QUEUED:
        # Also for an existing job: if an earlier submit died between creating and
        # enqueueing, this repairs it; otherwise arq sees the job id and does nothing.
        await jobqueue.enqueue_scrape(svc.redis, request_id, url)
    # Behind Sentinel, accepted means on a replica too (a failover cannot lose it); short of
    # that the submitter gets 503 and retries with the same request_id, which is idempotent.
    settings = svc.settings
    await jobqueue.wait_for_replicas(svc.redis, settings.wait_replicas, settings.redis_wait_timeout)
    return created, job


def job_reply(svc: Services, job: JobRecord, identity: Identity) -> dict[str, Any]:
    """What a submitter learns: where to watch the job, and the token that opens it."""
    channel = job_channel(job.request_id)
    reply: dict[str, Any] = {
        "request_id": job.request_id,
        "url": job.url,
        "status": job.status,
        "channel": channel,
        "ws_url": job_ws_path(job.request_id),
    }
    token = svc.auth.issue_subscribe_token(channel, identity.user)
    if token is not None:
        reply["subscribe_token"] = token
    return reply
