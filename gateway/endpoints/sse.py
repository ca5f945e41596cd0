"""``GET /sse?channel=<channel>[&token=]``: publications as server-sent events.

For networks where WebSockets are blocked. Each event has ``id: <offset>``; a reconnecting
EventSource sends ``Last-Event-ID`` and resumes after it, or is told ``event: unrecovered``
when that part of the history is gone. Every block the stream writes (the ``retry:``
preamble, events, keepalive comments) counts as a message sent, once the response has written it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable

from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from gateway.access import origin_allowed
from gateway.channel_access import authorize_request
from gateway.delivery.feed import Feed
from gateway.delivery.subscribe import from_redis, subscribe_feed
from gateway.rate_limits import limit_connection
from gateway.services import Services, services
from pushgate.broker.shards import ShardedStore
from pushgate.broker.store import Replay
from pushgate.core.channels import JOB_NAMESPACE, Channel, parse_channel
from pushgate.core.errors import ErrorKind, PushgateError
from pushgate.core.events import is_terminal
from pushgate.core.logs import channel_fields
from pushgate.core.wire import Publication, new_client_id, parse_offset

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0
_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def sse(request: Request) -> StreamingResponse:
    svc = services(request)
    await limit_connection(svc, request.scope)
    if not origin_allowed(request.scope, svc.settings.auth.allowed_origins):
        raise PushgateError(ErrorKind.FORBIDDEN, "origin not allowed")
    channel = parse_channel(request.query_params.get("channel"))
    last_id = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    try:
        if last_id:
            parse_offset(last_id)
    except PushgateError as exc:
        raise PushgateError(ErrorKind.INVALID_LAST_EVENT_ID, exc.message) from None
    await authorize_request(svc, request, channel)
    events = _events(svc, channel, last_id or None)
    return StreamingResponse(events, media_type="text/event-stream", headers=_HEADERS)


async def _events(svc: Services, channel: Channel, last_id: str | None) -> AsyncIterator[str]:
    limit = svc.settings.limits.ws_queue_size
    # Bounded by hand, for live events only: the replay a stream starts with may be longer.
    queue: asyncio.Queue[Publication | None] = asyncio.Queue()
    bounded = False

    def overflow() -> None:
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(None)

    def forward(publication: Publication) -> None:
        if bounded and queue.qsize() >= limit:
            overflow()
        else:
            queue.put_nowait(publication)

    # Overflowing, or dropped by the hub: the stream ends, and EventSource resumes from its id.
    feed = Feed(forward, after=None, held_limit=limit, overflow=overflow, on_lost=overflow)
    await subscribe_feed(svc, channel.full, feed)
    # A drain ends the stream the way overflow does: EventSource reconnects and resumes.
    entry = svc.connections.register(lambda _code, _reason: overflow())
    svc.metrics.opened.labels("sse").inc()
    fields = {"client": new_client_id(), "transport": "sse", **channel_fields(channel)}
    log.debug("stream opened", extra=fields)
    opened = time.monotonic()
    # Counted when the stream is asked for the next block: the response has written this one.
    sent = svc.metrics.sent("sse")
    try:
        yield "retry: 2000\n\n"
        sent.count += 1
        missed, floor, recovered = await from_redis(svc, _start(svc, channel, last_id))
        if not recovered:
            yield "event: unrecovered\ndata: {}\n\n"
            sent.count += 1
        feed.go_live(missed, floor=floor)
        bounded = True
        async for event in _drain(queue):
            yield event
            sent.count += 1
    finally:
        svc.metrics.closed.labels("sse", "1000").inc()
        log.debug("stream closed after %.1f s", time.monotonic() - opened, extra=fields)
        svc.connections.leave(entry)
        svc.hub.unsubscribe(channel.full, feed)


async def _start(
    svc: Services, channel: Channel, last_id: str | None
) -> tuple[list[Publication], str | None, bool]:
    """What to send first: (publications, offset to start after, whether nothing was lost)."""
    replay = await _first_read(svc.backend, channel, last_id)
    svc.hub.note_position(channel.full, replay.epoch, replay.offset)  # the hub learns its epoch
    if last_id is not None:
        if replay.recovered:
            return replay.publications, last_id, True
        return [], replay.offset, False
    if channel.namespace == JOB_NAMESPACE:
        return replay.publications, None, True
    return [], replay.offset, True


def _first_read(backend: ShardedStore, channel: Channel, last_id: str | None) -> Awaitable[Replay]:
    if last_id is not None:
        return backend.replay(channel.full, after=last_id, since_epoch=None)
    if channel.namespace == JOB_NAMESPACE:  # a job's stream tells its whole story
        return backend.replay(channel.full)
    return backend.latest(channel.full, 1)


async def _drain(queue: asyncio.Queue[Publication | None]) -> AsyncIterator[str]:
    while True:
        try:
            publication = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
        except TimeoutError:
            yield ": keepalive\n\n"
            continue
        if publication is None:
            return
        yield publication.sse_event
        if is_terminal(publication.data) and publication.channel.startswith("job:"):
            yield "event: end\ndata: {}\n\n"
            return


ROUTES = [Route("/sse", sse, methods=["GET"])]
