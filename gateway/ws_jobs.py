"""``WS /ws/jobs/{request_id}[?since=<offset>]``: one job's events, history first, then live.

Frames are ``{"channel", "offset", "data": <event>}``; the socket closes with 1000 after the
terminal event. The client is not expected to send anything; what it sends is read and dropped
so that pings keep flowing, and an oversized message closes the socket with 1009.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway.hub import SubscribeError
from gateway.outbox import Feed, Outbox
from gateway.services import Services, services
from pushgate.events import is_terminal
from pushgate.wire import CloseCode, Publication, WireError, job_channel, parse_offset
from pushgate.wire import validate_request_id as _validate_id

# Clients of this endpoint only need to send pings or nothing at all.
MAX_INBOUND_BYTES = 4096
SUBSCRIBE_TIMEOUT = 10.0


async def job_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    svc = services(websocket)
    try:
        request_id = _validate_id(websocket.path_params["request_id"])
        since = websocket.query_params.get("since")
        after = None if since is None else parse_offset(since)
    except WireError as exc:
        await websocket.close(CloseCode.BAD_REQUEST, exc.message)
        return
    job = await svc.backend.get_job(request_id)
    if job is None:
        await websocket.close(CloseCode.UNKNOWN_JOB, f"unknown job {request_id}")
        return
    await _stream(websocket, svc, job_channel(request_id), since, after, job.finished)


async def _stream(
    websocket: WebSocket,
    svc: Services,
    channel: str,
    since: str | None,
    after: tuple[int, int] | None,
    finished: bool,
) -> None:
    outbox = Outbox(svc.settings.ws_queue_size)

    def forward(publication: Publication) -> None:
        outbox.push(publication.job_frame)
        if is_terminal(publication.data):
            outbox.finish(CloseCode.NORMAL, "job finished")

    feed = Feed(
        forward,
        after=after,
        held_limit=svc.settings.ws_queue_size,
        overflow=lambda: outbox.abort(CloseCode.SLOW_CONSUMER, "client is not reading"),
    )
    try:
        async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
            await svc.hub.subscribe(channel, feed)
            feed.go_live(await svc.backend.history(channel, after=since))
    except (TimeoutError, SubscribeError):
        await svc.hub.unsubscribe(channel, feed)
        await websocket.close(CloseCode.TRY_AGAIN_LATER, "event stream unavailable, retry")
        return
    if finished:
        # The terminal event was in history; if it was not sent, `since` was already past it.
        outbox.finish(CloseCode.NORMAL, "job finished")
    try:
        await _run_until_either_ends(
            outbox.run(websocket, svc.settings.ws_send_timeout), _drain_inbound(websocket)
        )
    finally:
        await svc.hub.unsubscribe(channel, feed)


async def _drain_inbound(websocket: WebSocket) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("text") or message.get("bytes") or b""
        if len(data) > MAX_INBOUND_BYTES:
            await websocket.close(CloseCode.MESSAGE_TOO_BIG, "this endpoint takes no messages")
            return


async def _run_until_either_ends(*coroutines: Coroutine[Any, Any, None]) -> None:
    tasks = [asyncio.create_task(c) for c in coroutines]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await task


ROUTES = [WebSocketRoute("/ws/jobs/{request_id}", job_socket)]
