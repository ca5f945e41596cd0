"""HTTP job API: submit a scrape, look one up."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.access import identify
from gateway.channel_access import authorize_request
from gateway.endpoints.body import read_json_object
from gateway.rate_limits import limit_submission
from gateway.services import services
from gateway.submission import job_reply, submit_job
from pushgate.core.channels import JOB_NAMESPACE, Channel
from pushgate.core.errors import ErrorKind, PushgateError
from pushgate.core.wire import new_request_id, validate_request_id, validate_url


async def post_job(request: Request) -> JSONResponse:
    svc = services(request)
    identity = identify(svc.auth, request.headers)
    await limit_submission(svc, identity, request.scope)
    body = await read_json_object(request, svc.settings.limits)
    url = validate_url(body.get("url"))
    raw_id = body.get("request_id")
    request_id = new_request_id() if raw_id is None else validate_request_id(raw_id)
    created, job = await submit_job(svc, request_id, url, identity)
    return JSONResponse(job_reply(svc, job, identity), status_code=202 if created else 200)


async def put_url(request: Request) -> JSONResponse:
    """The original prototype's submit call, kept for its clients."""
    svc = services(request)
    identity = identify(svc.auth, request.headers)
    await limit_submission(svc, identity, request.scope)
    request_id = validate_request_id(request.path_params["request_id"])
    body = await read_json_object(request, svc.settings.limits)
    url = validate_url(body.get("url"))
    created, _job = await submit_job(svc, request_id, url, identity)
    payload = {"status": "accepted", "request_id": request_id}
    return JSONResponse(payload, status_code=201 if created else 200)


async def get_job(request: Request) -> JSONResponse:
    """Readable by the job's owner (bearer token) or with its subscribe token (``?token=``)."""
    svc = services(request)
    request_id = validate_request_id(request.path_params["request_id"])
    try:
        readable = await authorize_request(svc, request, Channel(JOB_NAMESPACE, request_id))
    except PushgateError as exc:
        if exc.kind is not ErrorKind.UNKNOWN_CHANNEL:
            raise
        raise PushgateError(
            ErrorKind.UNKNOWN_JOB, f"no job with request_id {request_id!r}"
        ) from None
    assert readable.job is not None
    return JSONResponse(readable.job.to_json())


ROUTES = [
    Route("/jobs", post_job, methods=["POST"]),
    Route("/jobs/{request_id}", get_job, methods=["GET"]),
    Route("/urls/{request_id}", put_url, methods=["PUT"]),
]
