"""HTTP job API: submit a scrape, look one up."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.access import identify
from gateway.channel_access import authorize_request
from gateway.endpoints.body import read_json_object
from gateway.errors import ApiError
from gateway.services import Services, services
from gateway.submission import JobConflictError, job_reply, submit_job
from pushgate.broker.store import JobRecord
from pushgate.core.channels import JOB_NAMESPACE, Channel, Identity
from pushgate.core.wire import WireError, new_request_id, validate_request_id, validate_url


def _checked(value: object, validate: Callable[[object], str]) -> str:
    try:
        return validate(value)
    except WireError as exc:
        raise ApiError(422, exc.code, exc.message) from None


async def _submit(
    svc: Services, request_id: str, url: str, identity: Identity
) -> tuple[bool, JobRecord]:
    try:
        return await submit_job(svc, request_id, url, identity)
    except JobConflictError as exc:
        raise ApiError(409, "conflict", str(exc)) from None


async def post_job(request: Request) -> JSONResponse:
    svc = services(request)
    identity = identify(svc.auth, request.headers)
    body = await read_json_object(request, svc.settings.max_body_bytes)
    url = _checked(body.get("url"), validate_url)
    raw_id = body.get("request_id")
    request_id = new_request_id() if raw_id is None else _checked(raw_id, validate_request_id)
    created, job = await _submit(svc, request_id, url, identity)
    return JSONResponse(job_reply(svc, job, identity), status_code=202 if created else 200)


async def put_url(request: Request) -> JSONResponse:
    """The original prototype's submit call, kept for its clients."""
    svc = services(request)
    identity = identify(svc.auth, request.headers)
    request_id = _checked(request.path_params["request_id"], validate_request_id)
    body = await read_json_object(request, svc.settings.max_body_bytes)
    url = _checked(body.get("url"), validate_url)
    created, _job = await _submit(svc, request_id, url, identity)
    payload = {"status": "accepted", "request_id": request_id}
    return JSONResponse(payload, status_code=201 if created else 200)


async def get_job(request: Request) -> JSONResponse:
    """Readable by the job's owner (bearer token) or with its subscribe token (``?token=``)."""
    svc = services(request)
    request_id = _checked(request.path_params["request_id"], validate_request_id)
    try:
        readable = await authorize_request(svc, request, Channel(JOB_NAMESPACE, request_id))
    except ApiError as exc:
        if exc.status != 404:
            raise
        raise ApiError(404, "unknown_job", f"no job with request_id {request_id!r}") from None
    assert readable.job is not None
    return JSONResponse(readable.job.to_json())


ROUTES = [
    Route("/jobs", post_job, methods=["POST"]),
    Route("/jobs/{request_id}", get_job, methods=["GET"]),
    Route("/urls/{request_id}", put_url, methods=["PUT"]),
]
