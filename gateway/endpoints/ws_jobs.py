"""``WS /ws/jobs/{request_id}[?since=<offset>][&token=<subscribe token>]``: one job's events.

History first, then live, as frames ``{"channel", "offset", "data": <event>}``; the socket
closes with 1000 after the terminal event. A socket opened before its job is submitted waits
for it (``gateway/job_wait.py``). The client is not expected to send anything: what it sends is
read and dropped (so that pings keep flowing), and a message over ``MAX_INBOUND_BYTES`` (bytes,
not characters) closes the socket with 1009. While Redis cannot serve it the socket closes with
1013, as it does when the gateway may have missed some of the job's events (reconnect with
``since``).
"""

from __future__ import annotations

import contextlib
import logging
import time

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway.access import origin_allowed
from gateway.channel_access import authorize_job_socket
from gateway.delivery.direct import Transport
from gateway.delivery.outbox import Outbox
from gateway.delivery.subscribe import from_redis, subscribe_feed
from gateway.rate_limits import admit_socket
from gateway.services import Services, services
from pushgate.core.channels import JOB_NAMESPACE, Channel
from pushgate.core.errors import CloseCode, ErrorKind, PushgateError
from pushgate.core.events import JobRecord, is_terminal
from pushgate.core.logs import channel_fields, close_level
from pushgate.core.wire import (
    RESUBSCRIBE_REASON,
    OffsetKey,
    Publication,
    close_reason,
    frame_size,
    new_client_id,
    parse_offset,
)
from pushgate.core.wire import validate_request_id as _validate_id

log = logging.getLogger(__name__)

# Clients of this endpoint only need to send pings or nothing at all.
MAX_INBOUND_BYTES = 4096


async def job_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    svc = services(websocket)
    if not await admit_socket(websocket, svc):
        return
    if not origin_allowed(websocket.scope, svc.settings.auth.allowed_origins):
        await _refuse(websocket, CloseCode.FORBIDDEN, "origin not allowed")
        return
    try:
        request_id = _validate_id(websocket.path_params["request_id"])
        since = websocket.query_params.get("since")
        after = None if since is None else parse_offset(since)
    except PushgateError as exc:
        await _refuse(websocket, CloseCode.BAD_REQUEST, exc.message)
        return
    channel = Channel(JOB_NAMESPACE, request_id)
    try:
        token = websocket.query_params.get("token")
        job = await from_redis(svc, authorize_job_socket(svc, channel, token))
        await _stream(websocket, svc, channel, since, after, job)
    except PushgateError as exc:
        await _refuse(websocket, exc.kind.close_code, exc.message)


async def _refuse(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(WebSocketDisconnect):  # a client that is gone already is no error
        await websocket.close(code, close_reason(reason))


async def _stream(
    websocket: WebSocket,
    svc: Services,
    channel: Channel,
    since: str | None,
    after: OffsetKey | None,
    job: JobRecord | None,
) -> None:
    """Stream the job's events; ``job`` None: it is not submitted yet, so wait for it."""
    transport = Transport.of_scope(websocket.scope)
    client = new_client_id()
    sent = svc.metrics.sent("ws_jobs")
    outbox = Outbox.for_socket(websocket, svc.settings.limits, transport, sent, client=client)
    unknown = f"unknown job {channel.name}"
    wait = None
    if job is None:
        wait = svc.job_waits.enter(lambda: outbox.finish(CloseCode.UNKNOWN_JOB, unknown))
        if wait is None:
            raise PushgateError(ErrorKind.UNKNOWN_JOB, unknown)

    def forward(publication: Publication) -> None:
        if wait is not None:
            wait.end()  # the job exists: its first event is here
        outbox.push(publication.job_frame)
        if is_terminal(publication.data):
            outbox.finish(CloseCode.NORMAL, "job finished")

    def lost() -> None:
        outbox.finish(CloseCode.TRY_AGAIN_LATER, RESUBSCRIBE_REASON)

    feed = outbox.feed(forward, after=after, on_lost=lost)
    try:
        await subscribe_feed(svc, channel.full, feed)
        entry = svc.connections.register(outbox.finish)
        svc.metrics.opened.labels("ws_jobs").inc()
        fields = {"client": client, "transport": "ws_jobs", **channel_fields(channel)}
        log.debug("socket opened", extra=fields)
        opened = time.monotonic()
        try:
            replay = await from_redis(svc, svc.backend.replay(channel.full, after=since))
            svc.hub.note_position(channel.full, replay.epoch, replay.offset)
            feed.go_live(replay.publications)
            if job is not None and job.finished:
                # The terminal event was in history; if it was not sent, `since` was past it.
                outbox.finish(CloseCode.NORMAL, "job finished")
            code = await _drain_inbound(websocket)
            svc.metrics.closed.labels("ws_jobs", str(code)).inc()
            lived = time.monotonic() - opened
            fields["code"] = code
            log.log(close_level(code), "socket closed (%d) after %.1f s", code, lived, extra=fields)
        finally:
            svc.connections.leave(entry)
            await outbox.stop()
            svc.hub.unsubscribe(channel.full, feed)
    finally:
        if wait is not None:
            wait.end()


async def _drain_inbound(websocket: WebSocket) -> int:
    """Read until the client leaves (also after a close we sent: it answers, or uvicorn drops it
    after its close timeout); returns the close code."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return int(message.get("code", 1005))
        if frame_size(message) > MAX_INBOUND_BYTES:
            await websocket.close(CloseCode.MESSAGE_TOO_BIG, "this endpoint takes no messages")
            return int(CloseCode.MESSAGE_TOO_BIG)


ROUTES = [WebSocketRoute("/ws/jobs/{request_id}", job_socket)]
