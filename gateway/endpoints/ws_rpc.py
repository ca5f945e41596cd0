"""``WS /ws``: the multiplexed realtime protocol of docs/protocol.md.

Parsing and per-connection rules are in ``pushgate.core.protocol``; this module moves frames between
the socket and those rules, and calls the hub and the backend. Requests on one connection run
one at a time, so answers keep the order of the requests; ``rpc`` calls, the application's own,
are handed to the connection's queue of them (``gateway/rpc/calls.py``) and answered when they
finish, so a slow handler holds up neither the socket nor the client's other calls.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from gateway.access import origin_allowed
from gateway.channel_access import authorize_read, namespace_of, reads_redis
from gateway.delivery.direct import Transport
from gateway.delivery.feed import Feed
from gateway.delivery.outbox import Outbox
from gateway.delivery.subscribe import from_redis, subscribe_at_newest, subscribe_feed
from gateway.publishing import publish_as_server
from gateway.rate_limits import admit_socket, limit_submission
from gateway.rpc.calls import RpcCalls
from gateway.services import Services, services
from gateway.submission import job_reply, submit_job
from pushgate.broker.store import HistoryPolicy
from pushgate.core.auth import AuthError
from pushgate.core.channels import ANONYMOUS, JOB_NAMESPACE, Channel, Identity, may_publish
from pushgate.core.errors import CloseCode, ErrorKind, PushgateError
from pushgate.core.logs import channel_fields, close_level
from pushgate.core.protocol import (
    METHODS,
    CallParams,
    ConnectParams,
    HistoryParams,
    PingParams,
    PublishParams,
    Request,
    RequestError,
    RpcParams,
    Session,
    SubmitParams,
    SubscribeParams,
    UnsubscribeParams,
    encode_error,
    encode_result,
    parse_params,
    parse_request,
)
from pushgate.core.rpc import ClientAnswer
from pushgate.core.wire import (
    Publication,
    frame_size,
    new_client_id,
    new_request_id,
    parse_offset,
    resubscribe_frame,
)

log = logging.getLogger(__name__)

Result = dict[str, Any]
# A handler's answer, and what to do right after it is queued (replay a subscription).
Outcome = tuple[Result, Callable[[], None] | None]


async def rpc_socket(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI app of ``WS /ws``: it gets uvicorn's own ``send`` (see ``direct.py``)."""
    websocket = WebSocket(scope, receive, send)
    svc = services(websocket)
    await websocket.accept()
    if not await admit_socket(websocket, svc):
        return
    allowed = origin_allowed(scope, svc.settings.auth.allowed_origins)
    # The handshake's headers are of no use past this point: an idle socket should not hold them
    # (not even an empty list: the empty tuple is one object, shared).
    scope["headers"] = ()
    if not allowed:
        await websocket.close(CloseCode.FORBIDDEN, "origin not allowed")
        return
    connection = RpcConnection(websocket, svc, Transport.of(send))
    entry = svc.connections.try_enter(connection.close)
    if entry is None:
        await websocket.close(CloseCode.TOO_MANY_CONNECTIONS, "gateway is full, try another")
        return
    svc.metrics.opened.labels("ws_rpc").inc()
    try:
        await connection.run()
    finally:
        svc.connections.leave(entry)


class RpcConnection:
    """One ``WS /ws`` connection: requests answered one at a time, in order; its subscriptions."""

    __slots__ = (
        "_client", "_expiry", "_feeds", "_loop", "_opened", "_outbox", "_rpc", "_session", "_svc",
        "_token", "_ws",
    )  # fmt: skip

    def __init__(self, websocket: WebSocket, svc: Services, transport: Transport | None) -> None:
        settings = svc.settings
        self._ws = websocket
        self._svc = svc
        self._loop = asyncio.get_running_loop()
        self._opened = self._loop.time()
        self._client = new_client_id()
        self._outbox = Outbox.for_socket(
            websocket,
            settings.limits,
            transport,
            svc.metrics.sent("ws_rpc"),
            client=self._client,
            writes=svc.hub.writes,
        )
        self._session = Session(
            auth_required=svc.auth.enabled,
            max_subscriptions=settings.limits.max_subscriptions,
            rate=settings.limits.client_rate,
            burst=settings.limits.client_burst,
            now=self._loop.time(),
        )
        self._feeds: dict[str, Feed] = {}
        self._expiry: asyncio.TimerHandle | None = None
        self._token: str | None = None  # the checked connection token, for the RPC proxy
        self._rpc: RpcCalls | None = None  # made on the first ``rpc`` call

    @property
    def _identity(self) -> Identity:
        return self._session.identity or ANONYMOUS

    async def run(self) -> None:
        """Read until the client leaves (also after a close we sent: it answers, or uvicorn
        drops it after its close timeout). The receive is awaited here, not in a helper: every
        coroutine frame of the wait is held by every idle socket."""
        connect_by = self._loop.time() + self._svc.settings.limits.connect_timeout
        log.debug("socket opened", extra={"client": self._client, "transport": "ws_rpc"})
        try:
            while True:
                auth = self._svc.auth.enabled
                deadline = None if self._session.connected or not auth else connect_by
                if deadline is None:  # most sockets: no timer per read
                    message = await self._ws.receive()
                else:
                    try:
                        async with asyncio.timeout_at(deadline):
                            message = await self._ws.receive()
                    except TimeoutError:
                        self._outbox.finish(CloseCode.UNAUTHORIZED, "connect timeout")
                        connect_by = float("inf")
                        continue
                if not await self._on_message(message):
                    return
                del message  # an idle socket does not hold its last message
        finally:
            await self._leave()

    async def _leave(self) -> None:
        if self._rpc is not None:  # first: its handlers would write to the outbox
            await self._rpc.close()
        await self._outbox.stop()
        if self._expiry is not None:
            self._expiry.cancel()
        for channel, feed in self._feeds.items():
            self._svc.hub.unsubscribe(channel, feed)
        # Each feed's callbacks hold this connection: without the feeds, refcounting frees it.
        self._feeds.clear()

    def close(self, code: int, reason: str) -> None:
        """Close after what is already queued (a drain does)."""
        self._outbox.finish(code, reason)

    async def _on_message(self, message: Message) -> bool:
        """Handle one message; False once the client left."""
        metrics = self._svc.metrics
        if message["type"] == "websocket.disconnect":
            code = int(message.get("code", 1005))
            metrics.closed.labels("ws_rpc", str(code)).inc()
            self._log_closed(code)
            return False
        metrics.messages_received.labels("ws_rpc").inc()
        text = message.get("text")
        limit = self._svc.settings.limits.max_message_bytes
        if frame_size(message) > limit:
            self._outbox.abort(CloseCode.MESSAGE_TOO_BIG, f"message over {limit} bytes")
        elif text is None:  # docs/protocol.md: text frames only
            self._outbox.finish(CloseCode.UNSUPPORTED_DATA, "binary frames are not supported")
        elif not self._outbox.closing:
            await self._handle(text)
        return True

    def _log_closed(self, code: int) -> None:
        lived = self._loop.time() - self._opened
        fields = {"client": self._client, "transport": "ws_rpc", "code": code}
        log.log(close_level(code), "socket closed (%d) after %.1f s, %d subscriptions", code,
                lived, len(self._feeds), extra=fields)  # fmt: skip

    async def _handle(self, frame: str) -> None:
        request: Request | None = None
        try:
            parsed = parse_request(frame)
            if isinstance(parsed, ClientAnswer):
                if self._rpc is not None:
                    self._rpc.settle(parsed)
                return
            request = parsed
            self._session.admit(request, self._loop.time())
            params = parse_params(request)
            if isinstance(params, RpcParams):
                self._rpc_calls().submit(request.id, params)  # answered when it finishes
                return
            result, then = await self._dispatch(request, params)
        except PushgateError as exc:
            if isinstance(exc, RequestError):
                request_id = exc.request_id
            else:
                assert request is not None  # only parsing fails before there is a request
                request_id = request.id
            # Bounded label: a client may name any method; only ours are counted by name.
            known = isinstance(request, Request) and request.method in METHODS
            method = request.method if known and request is not None else "(other)"
            self._svc.metrics.rpc_errors.labels(method, str(int(exc.kind.rpc_code))).inc()
            if request is None or request.id is not None:
                self._outbox.push(encode_error(request_id, exc))
            if exc.closes:
                self._outbox.finish(exc.kind.close_code, exc.message)
            return
        if request.id is not None:
            self._outbox.push(encode_result(request.id, result))
        if then is not None:
            then()

    def _rpc_calls(self) -> RpcCalls:
        if self._rpc is None:
            svc = self._svc
            self._rpc = RpcCalls(
                svc.rpc,
                svc.settings.rpc,
                client=self._client,
                identity=lambda: self._identity,
                token=lambda: self._token,
                publish=lambda channel, data: publish_as_server(svc, channel, data),
                push=self._outbox.push,
            )
        return self._rpc

    async def _dispatch(self, request: Request, params: CallParams) -> Outcome:
        try:
            return await self._call(params)
        except RedisError as exc:
            log.warning(
                "redis error in %s: %s",
                request.method,
                exc,
                extra=self._fields(request.method, params),
            )
            message = "the store is unavailable; retry"
            raise PushgateError(ErrorKind.UNAVAILABLE, message) from None
        except PushgateError:
            raise
        except Exception:
            log.exception("%s failed", request.method, extra=self._fields(request.method, params))
            raise PushgateError(ErrorKind.INTERNAL_ERROR, "internal error") from None

    def _fields(self, method: str, params: CallParams) -> dict[str, object]:
        """The log fields of a call: this client, the method, the namespace it is about."""
        fields: dict[str, object] = {"client": self._client, "method": method}
        channel = getattr(params, "channel", None)
        if isinstance(channel, Channel):
            fields |= channel_fields(channel)
        return fields

    async def _call(self, params: CallParams) -> Outcome:
        match params:
            case ConnectParams():
                return self._connect(params), None
            case SubscribeParams():
                return await self._subscribe(params)
            case UnsubscribeParams():
                return self._unsubscribe(params.channel), None
            case PublishParams():
                return await self._publish(params), None
            case SubmitParams():
                return await self._submit(params)
            case HistoryParams():
                return await self._history(params), None
            case PingParams():
                return {}, None

    def _connect(self, params: ConnectParams) -> Result:
        try:
            identity = self._svc.auth.identify(params.token)
        except AuthError as exc:
            exc.closes = True
            raise
        self._session.connect(identity)
        if self._svc.auth.enabled:  # only a token the gateway checked goes to the RPC proxy
            self._token = params.token
        if identity.expires_at is not None:
            delay = max(0.0, identity.expires_at - time.time())
            self._expiry = self._loop.call_later(
                delay, self._outbox.finish, CloseCode.UNAUTHORIZED, "token expired"
            )
        return {
            "client": self._client,
            "user": identity.user,
            "expires_at": identity.expires_at,
        }

    def _new_feed(self, channel: str, floor: str | None) -> Feed:
        # The callbacks do not hold the feed (a feed holding itself is a cycle that only the
        # cyclic GC frees); ``_lost`` finds it by its channel. A bound method and a partial:
        # fewer objects per subscription than two closures and their cells.
        return self._outbox.feed(
            self._forward,
            after=parse_offset(floor) if floor else None,
            on_lost=functools.partial(self._lost, channel),
        )

    def _forward(self, publication: Publication) -> None:
        self._outbox.push(publication.rpc_frame, publication.rpc_wire)

    def _lost(self, channel: str) -> None:
        """The hub dropped the channel's feed: the subscription ends here, and the client is told
        to subscribe again from its last publication (docs/protocol.md, "Delivery"). A feed
        replaced since (the client subscribed again) is not the one lost: nothing to do."""
        feed = self._feeds.get(channel)
        if feed is None or not feed.is_lost:
            return
        del self._feeds[channel]
        self._session.subscriptions.discard(channel)
        self._outbox.push(resubscribe_frame(channel))

    async def _attach(self, channel: str, feed: Feed) -> None:
        await subscribe_feed(self._svc, channel, feed)
        self._register(channel, feed)

    def _register(self, channel: str, feed: Feed) -> None:
        self._feeds[channel] = feed
        self._session.subscriptions.add(channel)

    async def _subscribe(self, params: SubscribeParams) -> Outcome:
        channel, since = params.channel, params.since
        self._session.check_can_subscribe(channel)
        svc = self._svc
        check = authorize_read(svc, channel, self._identity, params.token)
        # Only a job channel's check reads Redis (the job's record): no timer for the others.
        await (from_redis(svc, check) if reads_redis(channel) else check)
        if since is None:
            return await self._subscribe_from_now(channel)
        feed = self._new_feed(channel.full, since.offset)
        await self._attach(channel.full, feed)
        try:
            replay = await from_redis(
                svc, svc.backend.replay(channel.full, after=since.offset, since_epoch=since.epoch)
            )
        except BaseException:
            self._unsubscribe(channel)
            raise
        svc.hub.note_position(channel.full, replay.epoch, replay.offset)
        result: Result = {"channel": channel.full, "epoch": replay.epoch, "offset": replay.offset}
        result["recovered"] = replay.recovered
        self._svc.metrics.resumes.labels(str(replay.recovered).lower()).inc()
        if replay.recovered:
            return result, lambda: feed.go_live(replay.publications)
        # Nothing replayed: the client refetches its state and goes on from the newest offset.
        return result, lambda: feed.go_live([], floor=replay.offset or None)

    async def _subscribe_from_now(self, channel: Channel) -> Outcome:
        """Live from the channel's newest offset: known here when the channel is already live on
        this gateway, so most subscribers of a busy channel cost no Redis round trip."""
        hub = self._svc.hub
        feed = self._new_feed(channel.full, None)
        position = hub.attach_at_position(channel.full, feed)
        if position is not None:
            self._register(channel.full, feed)
        else:
            svc = self._svc
            position = await subscribe_at_newest(
                hub, svc.positions, channel.full, feed, redis_timeout=svc.settings.redis_timeout
            )
            self._register(channel.full, feed)
            hub.note_position(channel.full, *position)
        epoch, offset = position
        result: Result = {"channel": channel.full, "epoch": epoch, "offset": offset}
        return result, lambda: feed.go_live([], floor=offset or None)

    def _unsubscribe(self, channel: Channel) -> Result:
        feed = self._feeds.pop(channel.full, None)
        self._session.subscriptions.discard(channel.full)
        if feed is not None:
            self._svc.hub.unsubscribe(channel.full, feed)
        return {}

    async def _publish(self, params: PublishParams) -> Result:
        channel = params.channel
        namespace = namespace_of(self._svc, channel)
        if not may_publish(namespace, channel, self._identity, auth_enabled=self._svc.auth.enabled):
            raise PushgateError(
                ErrorKind.PERMISSION_DENIED, f"clients may not publish to {channel}"
            )
        policy = HistoryPolicy(namespace.history_size, namespace.history_ttl)
        offset, epoch = await self._svc.backend.publish(channel.full, params.data, policy)
        return {"offset": offset, "epoch": epoch}

    async def _submit(self, params: SubmitParams) -> Outcome:
        await limit_submission(self._svc, self._identity, self._ws.scope)
        request_id = params.request_id or new_request_id()
        channel = Channel(JOB_NAMESPACE, request_id)
        feed = None
        if params.subscribe:  # before the job exists, so not one of its events can slip by
            self._session.check_can_subscribe(channel)
            feed = self._new_feed(channel.full, None)
            await self._attach(channel.full, feed)
        try:
            _created, job = await submit_job(
                self._svc, request_id, params.url, self._identity, transport="ws_rpc"
            )
            history = await self._svc.backend.history(channel.full) if feed else []
        except BaseException:
            if feed is not None:
                self._unsubscribe(channel)
            raise
        reply = job_reply(self._svc, job, self._identity)
        return reply, (lambda: feed.go_live(history)) if feed else None

    async def _history(self, params: HistoryParams) -> Result:
        channel, since = params.channel, params.since
        await authorize_read(self._svc, channel, self._identity, None)
        backend = self._svc.backend
        if since is None:
            replay = await backend.latest(channel.full, params.limit)
        else:
            replay = await backend.replay(
                channel.full, after=since.offset, since_epoch=since.epoch, limit=params.limit
            )
            if not replay.recovered:  # never a silent partial answer: say so, give the newest
                latest = await backend.latest(channel.full, params.limit)
                replay = dataclasses.replace(latest, recovered=False)
        result: Result = {
            "channel": channel.full,
            "epoch": replay.epoch,
            "offset": replay.offset,
            "publications": [{"offset": p.offset, "data": p.data} for p in replay.publications],
        }
        if since is not None:
            result["recovered"] = replay.recovered
        return result
