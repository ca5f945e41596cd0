"""May this caller read this channel? One answer for WebSocket, SSE, history and GET /jobs."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from gateway.access import bearer_token, identify
from gateway.services import Services
from pushgate.core.auth import AuthError
from pushgate.core.channels import (
    ANONYMOUS,
    JOB_NAMESPACE,
    Channel,
    Identity,
    Namespace,
    may_subscribe,
)
from pushgate.core.errors import ErrorKind, PushgateError
from pushgate.core.events import JobRecord


@dataclass(frozen=True, slots=True)
class Readable:
    """A channel the caller may read: its namespace, and the job record for a job channel."""

    namespace: Namespace
    job: JobRecord | None  # the job, for a job channel


def namespace_of(svc: Services, channel: Channel) -> Namespace:
    namespace = svc.namespaces.get(channel)
    if namespace is None:
        raise PushgateError(ErrorKind.UNKNOWN_CHANNEL, f"no namespace {channel.namespace!r}")
    return namespace


def reads_redis(channel: Channel) -> bool:
    """Whether ``authorize_read`` of ``channel`` reads Redis: a job channel's (its record)."""
    return channel.namespace == JOB_NAMESPACE


async def authorize_read(
    svc: Services, channel: Channel, identity: Identity, token: str | None
) -> Readable:
    """Raise PushgateError (unknown channel, unauthorized, permission denied) unless readable.

    ``token`` is a subscribe token, which opens the one channel it names. A job the caller may
    not read is answered exactly like a job that does not exist, so that nobody learns which
    request ids are taken; a token that is itself invalid is still ``unauthorized``.
    """
    namespace = namespace_of(svc, channel)
    token_channel = None
    if token is not None:
        token_channel = svc.auth.subscribe_token_channel(token)
    job = None
    if reads_redis(channel):
        job = await svc.backend.get_job(channel.name)
    allowed = may_subscribe(
        namespace,
        channel,
        identity,
        auth_enabled=svc.auth.enabled,
        job_owner=job.owner if job else None,
        token_channel=token_channel,
    )
    if namespace.name == JOB_NAMESPACE and not (allowed and job):
        raise PushgateError(ErrorKind.UNKNOWN_CHANNEL, f"unknown job {channel.name}")
    if not allowed:
        if identity.user is None and token_channel is None:
            raise PushgateError(ErrorKind.UNAUTHORIZED, f"a token is needed to read {channel}")
        raise PushgateError(ErrorKind.PERMISSION_DENIED, f"not allowed to read {channel}")
    return Readable(namespace, job)


async def authorize_request(svc: Services, request: Request, channel: Channel) -> Readable:
    """``authorize_read`` for an HTTP request (bearer token, ``?token=`` subscribe token)."""
    identity = identify(svc.auth, request.headers) if bearer_token(request.headers) else ANONYMOUS
    return await authorize_read(svc, channel, identity, request.query_params.get("token"))


async def authorize_job_socket(
    svc: Services, channel: Channel, token: str | None
) -> JobRecord | None:
    """The job a ``/ws/jobs`` socket may read, or None when it is not submitted (yet).

    Raises PushgateError as ``authorize_read`` does, but with auth on checks the token before
    any lookup: a socket without the job's token learns nothing, and does not wait.
    """
    if svc.auth.enabled:
        if token is None:
            raise AuthError(f"a subscribe token (?token=) is needed to read {channel}")
        if svc.auth.subscribe_token_channel(token) != channel.full:
            raise PushgateError(ErrorKind.PERMISSION_DENIED, f"the token does not open {channel}")
    try:
        readable = await authorize_read(svc, channel, ANONYMOUS, token)
    except PushgateError as exc:
        if exc.kind is ErrorKind.UNKNOWN_CHANNEL:
            return None
        raise
    return readable.job
