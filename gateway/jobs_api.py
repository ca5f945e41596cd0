"""HTTP job API: submit a scrape, look one up."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.body import read_json_object
from gateway.errors import ApiError
from gateway.services import Services, services
from pushgate import jobqueue
from pushgate.backend import JobRecord
from pushgate.wire import (
    WireError,
    job_channel,
    job_ws_path,
    new_request_id,
    validate_request_id,
    validate_url,
)


def _checked(value: object, validate: Any) -> str:
    try:
        result: str = validate(value)
    except WireError as exc:
        raise ApiError(422, exc.code, exc.message) from None
    return result


async def _submit(svc: Services, request_id: str, url: str) -> tuple[bool, JobRecord]:
    """Create the job (or find it) and make sure it is queued; returns (created, job)."""
    created, job = await svc.backend.create_job(request_id, url)
    if job.url != url:
        raise ApiError(409, "conflict", f"request_id {request_id!r} is taken by another url")
    if job.status == "queued":
        # Also for an existing job: if an earlier submit died between creating and
        # enqueueing, this repairs it; otherwise arq sees the job id and does nothing.
        await jobqueue.enqueue_scrape(svc.redis, request_id, url)
    return created, job


async def post_job(request: Request) -> JSONResponse:
    svc = services(request)
    body = await read_json_object(request, svc.settings.max_body_bytes)
    url = _checked(body.get("url"), validate_url)
    raw_id = body.get("request_id")
    request_id = new_request_id() if raw_id is None else _checked(raw_id, validate_request_id)
    created, job = await _submit(svc, request_id, url)
    payload = {
        "request_id": request_id,
        "url": url,
        "status": job.status,
        "channel": job_channel(request_id),
        "ws_url": job_ws_path(request_id),
    }
    return JSONResponse(payload, status_code=202 if created else 200)


async def put_url(request: Request) -> JSONResponse:
    """The original prototype's submit call, kept for its clients."""
    svc = services(request)
    request_id = _checked(request.path_params["request_id"], validate_request_id)
    body = await read_json_object(request, svc.settings.max_body_bytes)
    url = _checked(body.get("url"), validate_url)
    created, _job = await _submit(svc, request_id, url)
    payload = {"status": "accepted", "request_id": request_id}
    return JSONResponse(payload, status_code=201 if created else 200)


async def get_job(request: Request) -> JSONResponse:
    request_id = _checked(request.path_params["request_id"], validate_request_id)
    job = await services(request).backend.get_job(request_id)
    if job is None:
        raise ApiError(404, "unknown_job", f"no job with request_id {request_id!r}")
    return JSONResponse(job.to_json())


ROUTES = [
    Route("/jobs", post_job, methods=["POST"]),
    Route("/jobs/{request_id}", get_job, methods=["GET"]),
    Route("/urls/{request_id}", put_url, methods=["PUT"]),
]
