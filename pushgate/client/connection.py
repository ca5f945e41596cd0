"""Asyncio client of the realtime protocol (``WS /ws``, docs/protocol.md).

One socket carries every call and every subscription. A single reader task owns the socket's
input: it matches responses to calls by id and hands publications to their ``Subscription``.
When the socket drops with a close code the protocol marks reconnectable, the client reconnects
with capped, fully jittered exponential backoff, sends ``connect`` again (asking a token
callable for a fresh token) and resubscribes every channel from the last position it delivered,
so each publication is yielded once and in order across reconnects. Calls made meanwhile wait
for the new connection. A ``resubscribe`` notification (the gateway may have missed some of a
channel's publications) resubscribes that channel the same way, on the same connection. Calls
the gateway makes to this client (from the app's ``rpc`` handlers) go to the handlers given to
``register``, each in a task of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as open_websocket
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    InvalidURI,
    WebSocketException,
)

from pushgate.client.wire import (
    ClientClosedError,
    ClientError,
    ConnectionLostError,
    PendingCalls,
    ProtocolViolationError,
    Publication,
    Resubscribe,
    ResultHook,
    RpcError,
    ServerCall,
    as_object,
    backoff_delay,
    decode_message,
    encode_answer,
    encode_failure,
    encode_request,
    is_new,
    rpc_params,
    should_reconnect,
    subscribe_params,
)
from pushgate.core.errors import RpcCode
from pushgate.core.protocol import Position
from pushgate.core.wire import job_channel, new_request_id

log = logging.getLogger(__name__)

TokenSource = str | Callable[[], Awaitable[str | None]] | None
UrlSource = str | Callable[[], str]
RecoveryHook = Callable[["Subscription"], None]
# A handler of calls from the gateway: params in, a JSON result (or an awaitable of one) out.
ClientHandler = Callable[[Any], Any]

DEFAULT_TIMEOUT = 10.0
# A history answer holds up to 100 publications of up to 64 KiB each.
MAX_FRAME_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class _End:
    error: BaseException | None  # None: ended by unsubscribe() or close()


class Subscription:
    """The publications of one channel, in offset order, each at most once, across reconnects.

    Iterate it with ``async for``. Iteration stops after ``unsubscribe()`` or ``close()`` and
    raises the client's error when the connection is lost for good. Publications wait in an
    unbounded queue until read, so read steadily.
    """

    def __init__(self, channel: str, since: Position | None, token: str | None = None) -> None:
        self.channel = channel
        # Where a resubscription resumes: the last publication delivered, else the position the
        # server reported when subscribing. None until the server confirmed the subscription.
        self.position = since
        # What the server last said about replaying from ``position``: True when nothing was
        # missed, False when the history was gone (refetch your state); None until asked.
        self.recovered: bool | None = None
        self._token = token
        self._active = False  # confirmed once: a reconnect resubscribes it
        self._queue: asyncio.Queue[Publication | _End] = asyncio.Queue()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Publication:
        item = await self._queue.get()
        if isinstance(item, Publication):
            return item
        self._queue.put_nowait(item)  # every later __anext__ ends the same way
        if item.error is not None:
            raise item.error
        raise StopAsyncIteration

    def _params(self) -> dict[str, Any]:
        return subscribe_params(self.channel, self.position, self._token)

    def _confirm(self, result: Any) -> None:
        """Apply a ``subscribe`` (or subscribing ``submit``) answer."""
        answer = as_object(result)
        token = answer.get("subscribe_token")
        if isinstance(token, str):
            self._token = token
        recovered = answer.get("recovered")
        if isinstance(recovered, bool):
            self.recovered = recovered
        # Without a position of ours, or when the history from it is gone, resume from the
        # channel's latest offset: nothing before it will be replayed.
        if "epoch" in answer and (self.position is None or recovered is False):
            self.position = Position(str(answer["epoch"]), str(answer["offset"]))
        self._active = True

    def _offer(self, publication: Publication) -> None:
        if is_new(self.position, publication):
            self.position = publication.position
            self._queue.put_nowait(publication)

    def _end(self, error: BaseException | None) -> None:
        self._queue.put_nowait(_End(error))


class PushgateClient:
    """A connection to a gateway's ``/ws`` that reconnects and resumes by itself.

    ``url`` is a ``ws://``/``wss://`` URL, or a callable giving the URL for each (re)connection
    (to move to another replica). ``token`` is a JWT, or an async callable asked for a fresh
    one on every connection. ``on_recovery`` is called (soon, in the event loop) with a
    subscription each time the server says whether it could replay from its position.
    Reconnection attempt ``n`` (from 0) waits a random time up to
    ``min(backoff_max, backoff_min * 2**n)``; ``max_attempts`` bounds the consecutive failed
    attempts (None: no bound).
    ``call_timeout`` bounds each call, waiting for a connection included; wrap a call in
    ``asyncio.timeout`` for another bound.
    """

    def __init__(
        self,
        url: UrlSource,
        *,
        token: TokenSource = None,
        backoff_min: float = 0.2,
        backoff_max: float = 10.0,
        max_attempts: int | None = None,
        open_timeout: float = DEFAULT_TIMEOUT,
        call_timeout: float = DEFAULT_TIMEOUT,
        on_recovery: RecoveryHook | None = None,
    ) -> None:
        self._url = url
        self._token = token
        self._backoff = (backoff_min, backoff_max)
        self._max_attempts = max_attempts
        self._open_timeout = open_timeout
        self._call_timeout = call_timeout
        self._on_recovery = on_recovery
        self._calls = PendingCalls()
        self._subscriptions: dict[str, Subscription] = {}
        self._socket: ClientConnection | None = None
        # Set while there is a usable connection, or once the client has failed for good.
        self._ready = asyncio.Event()
        self._failure: ClientClosedError | None = None
        self._started = False
        self._supervisor: asyncio.Task[None] | None = None
        self._resubscribing: set[asyncio.Task[None]] = set()
        self._handlers: dict[str, ClientHandler] = {}
        self._answering: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the first connection. It is not retried, so a wrong URL or token fails fast
        (with ClientClosedError); connections lost later are."""
        if self._started:
            raise ClientError("connect() was already called")
        self._started = True
        url = self._next_url()
        try:
            reader = await self._establish(url)
        except _CONNECT_ERRORS as exc:
            raise self._fail(ClientClosedError(f"cannot connect to {url}: {exc}")) from exc
        except BaseException:
            self._fail(ClientClosedError("connect() did not finish"))
            raise
        self._supervisor = asyncio.create_task(self._supervise(reader))

    async def close(self) -> None:
        """Stop for good: pending calls fail, subscriptions stop iterating."""
        self._fail(ClientClosedError("the client is closed"), graceful=True)
        for task in list(self._resubscribing):
            task.cancel()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        for task in list(self._answering):
            task.cancel()
        if self._socket is not None:
            await self._socket.close()
            self._socket = None

    async def call(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - per call, over the client's default
    ) -> Any:
        """Send a request and return its result; waits for a connection first while the
        client reconnects. ``timeout`` covers both. Raises RpcError for an error answer."""
        async with asyncio.timeout(self._call_timeout if timeout is None else timeout):
            socket = await self._connection()
            return await self._request(socket, method, params)

    async def rpc(
        self,
        method: str,
        params: Any = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - per call, over the client's default
    ) -> Any:
        """Call the application's ``method`` (``route`` or ``route.member``) and return its
        result. Raises RpcError: ``RPC_ERROR`` when its handler raised (``data`` holds the
        exception's ``type`` and ``message``), ``RPC_UNKNOWN_METHOD``, ``RPC_TIMEOUT``."""
        return await self.call("rpc", rpc_params(method, params), timeout=timeout)

    def register(self, method: str, handler: ClientHandler) -> None:
        """Answer the gateway's calls to ``method`` with ``handler(params)`` (sync or async);
        what it raises goes back as an error with its type, message and traceback."""
        self._handlers[method] = handler

    def subscription(self, channel: str) -> Subscription:
        """The live subscription to ``channel``, e.g. one that ``submit(subscribe=True)`` made."""
        return self._subscriptions[channel]

    async def subscribe(
        self,
        channel: str,
        *,
        since: Position | None = None,
        token: str | None = None,
    ) -> Subscription:
        """Subscribe; with ``since``, the publications after it come first (see ``recovered``).
        ``token`` is a channel's subscribe token, for a job of another owner."""
        subscription = Subscription(channel, since, token)
        await self._open_subscription(subscription, "subscribe", subscription._params())
        return subscription

    async def unsubscribe(self, channel: str) -> None:
        subscription = self._subscriptions.pop(channel, None)
        if subscription is None:
            raise ClientError(f"not subscribed to {channel}")
        subscription._end(None)
        await self.call("unsubscribe", {"channel": channel})

    async def publish(self, channel: str, data: Any) -> dict[str, Any]:
        """Publish ``data`` (any JSON); returns ``{"offset", "epoch"}``."""
        return as_object(await self.call("publish", {"channel": channel, "data": data}))

    async def submit(
        self,
        url: str,
        request_id: str | None = None,
        *,
        subscribe: bool = False,
    ) -> dict[str, Any]:
        """Queue a scrape. With ``subscribe``, the job's events from its first, ``queued``,
        arrive on ``subscription(result["channel"])``."""
        params: dict[str, Any] = {"url": url}
        if not subscribe:
            if request_id is not None:
                params["request_id"] = request_id
            return as_object(await self.call("submit", params))
        # The channel must be known before the answer: the job's first events may precede it.
        request_id = request_id or new_request_id()
        params.update(request_id=request_id, subscribe=True)
        # Positioned before any history, so a resubscription replays the job from its start.
        subscription = Subscription(job_channel(request_id), Position("", ""))
        return as_object(await self._open_subscription(subscription, "submit", params))

    async def history(
        self,
        channel: str,
        *,
        since: Position | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        params = subscribe_params(channel, since)
        if limit is not None:
            params["limit"] = limit
        return as_object(await self.call("history", params))

    # Connection lifecycle

    async def _connection(self) -> ClientConnection:
        while True:
            if self._failure is not None:
                raise self._failure.with_traceback(None)
            if not self._started:
                raise ClientError("call connect() first")
            if self._socket is not None:
                return self._socket
            await self._ready.wait()

    def _next_url(self) -> str:
        return self._url() if callable(self._url) else self._url

    async def _establish(self, url: str) -> asyncio.Task[int | None]:
        """One connection attempt: open, connect, resubscribe; returns the running reader."""
        socket = await open_websocket(
            url, open_timeout=self._open_timeout, max_size=MAX_FRAME_BYTES, compression=None
        )
        reader = asyncio.create_task(self._read(socket))
        try:
            async with asyncio.timeout(self._open_timeout):
                await self._handshake(socket)
        except BaseException:
            await socket.close()
            await asyncio.wait([reader])
            raise
        if reader.done():  # closed right after the handshake, before it counted as established
            raise ConnectionLostError(socket.close_code)
        self._socket = socket
        self._ready.set()
        return reader

    async def _handshake(self, socket: ClientConnection) -> None:
        token = await self._token() if callable(self._token) else self._token
        await self._request(socket, "connect", {} if token is None else {"token": token})
        resumed = [s for s in self._subscriptions.values() if s._active]
        outcomes = await asyncio.gather(
            *(self._request(socket, "subscribe", s._params(), self._confirmer(s)) for s in resumed),
            return_exceptions=True,
        )
        for subscription, outcome in zip(resumed, outcomes, strict=True):
            if isinstance(outcome, RpcError) and not self._retryable(outcome):
                # This channel cannot come back (e.g. its job expired); the others carry on.
                self._forget(subscription, outcome)
            elif isinstance(outcome, BaseException):
                raise outcome

    async def _supervise(self, reader: asyncio.Task[int | None]) -> None:
        try:
            while True:
                close_code = await reader
                if self._failure is not None:
                    return
                fields = {"code": close_code}
                log.info("connection lost (close code %s), reconnecting", close_code, extra=fields)
                reader = await self._reconnect()
        except ClientClosedError as exc:
            self._fail(exc)
        except Exception as exc:
            # E.g. the token callable raised: stop visibly, never leave callers waiting.
            log.exception("reconnecting failed")
            self._fail(ClientClosedError(f"cannot reconnect: {exc!r}"))

    async def _reconnect(self) -> asyncio.Task[int | None]:
        base, cap = self._backoff
        for attempt in itertools.count():
            if self._max_attempts is not None and attempt >= self._max_attempts:
                break
            await asyncio.sleep(backoff_delay(attempt, base=base, cap=cap))
            url = self._next_url()
            try:
                return await self._establish(url)
            except _CONNECT_ERRORS as exc:
                if not self._worth_retrying(exc):
                    code = exc.close_code if isinstance(exc, ConnectionLostError) else None
                    raise ClientClosedError(f"cannot reconnect to {url}: {exc}", code) from exc
                fields = {"attempt": attempt + 1}
                log.info("reconnection attempt %d to %s failed: %s", attempt + 1, url, exc,
                         extra=fields)  # fmt: skip
        raise ClientClosedError(f"gave up reconnecting after {self._max_attempts} attempts")

    def _worth_retrying(self, exc: Exception) -> bool:
        if isinstance(exc, RpcError):
            return self._retryable(exc)
        if isinstance(exc, ConnectionLostError):
            return should_reconnect(exc.close_code, renewable_token=callable(self._token))
        return not isinstance(exc, InvalidURI)

    def _retryable(self, error: RpcError) -> bool:
        if error.code == RpcCode.UNAUTHORIZED:
            return callable(self._token)  # the next connection asks for a fresh token
        return error.retryable

    def _fail(self, error: ClientClosedError, *, graceful: bool = False) -> ClientClosedError:
        """Enter the final state once: the first failure is the one every caller sees."""
        if self._failure is None:
            self._failure = error
            self._ready.set()
            self._calls.fail_all(error)
            for subscription in self._subscriptions.values():
                subscription._end(None if graceful else error)
            self._subscriptions.clear()
        return self._failure

    # Frames

    async def _read(self, socket: ClientConnection) -> int | None:
        """Dispatch every frame until the socket closes; returns the peer's close code.

        The bookkeeping of a lost connection happens here, before any other task runs, so no
        call made after this socket closed is sent on it.
        """
        with contextlib.suppress(ConnectionClosedError):
            async for frame in socket:
                self._dispatch(frame, socket)
        close_code = socket.close_code
        established = self._socket is socket  # else a handshake failed; its attempt decides
        if established:
            self._socket = None
            self._ready.clear()
        self._calls.fail_all(ConnectionLostError(close_code))
        if established and not should_reconnect(close_code, renewable_token=callable(self._token)):
            message = f"the gateway closed the connection with code {close_code}"
            self._fail(ClientClosedError(message, close_code))
        return close_code

    def _dispatch(self, frame: str | bytes, socket: ClientConnection) -> None:
        try:
            message = decode_message(frame)
        except ProtocolViolationError as exc:
            log.warning("ignoring a frame: %s", exc)
            return
        if isinstance(message, ServerCall):
            task = asyncio.create_task(self._answer(socket, message))
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)
        elif isinstance(message, Publication):
            subscription = self._subscriptions.get(message.channel)
            if subscription is not None:
                subscription._offer(message)
        elif isinstance(message, Resubscribe):
            self._start_resubscribe(message.channel)
        elif message is not None and not self._calls.settle(message):
            log.warning("ignoring an answer to no pending call: %r", message)

    async def _answer(self, socket: ClientConnection, call: ServerCall) -> None:
        """Run the handler of a server call and send its answer on the socket it came by."""
        handler = self._handlers.get(call.method)
        if handler is None:
            answer = encode_failure(call.id, None, call.method)
        else:
            try:
                result = handler(call.params)
                if inspect.isawaitable(result):
                    result = await result
                answer = encode_answer(call.id, result)
            except Exception as exc:
                answer = encode_failure(call.id, exc, call.method)
        with contextlib.suppress(ConnectionClosed):  # the gateway failed the call already
            await socket.send(answer)

    async def _request(
        self,
        socket: ClientConnection,
        method: str,
        params: Mapping[str, Any] | None,
        on_result: ResultHook | None = None,
    ) -> Any:
        request_id, answer = self._calls.open(on_result)
        try:
            await socket.send(encode_request(request_id, method, params))
            return await answer
        except ConnectionClosed as exc:
            raise ConnectionLostError(socket.close_code) from exc
        finally:
            self._calls.discard(request_id)

    # Subscriptions

    async def _open_subscription(
        self, subscription: Subscription, method: str, params: Mapping[str, Any]
    ) -> Any:
        async with asyncio.timeout(self._call_timeout):
            socket = await self._connection()
            if subscription.channel in self._subscriptions:
                raise ClientError(f"already subscribed to {subscription.channel}")
            # Registered before sending: publications may follow the answer in the same read.
            self._subscriptions[subscription.channel] = subscription
            try:
                return await self._request(socket, method, params, self._confirmer(subscription))
            except BaseException:
                self._forget(subscription, None)
                raise

    def _start_resubscribe(self, channel: str) -> None:
        subscription = self._subscriptions.get(channel)
        socket = self._socket
        if subscription is None or not subscription._active or socket is None:
            return  # not ours (any more), or a reconnect will resubscribe it anyway
        task = asyncio.create_task(self._resubscribe(socket, subscription))
        self._resubscribing.add(task)
        task.add_done_callback(self._resubscribing.discard)

    async def _resubscribe(self, socket: ClientConnection, subscription: Subscription) -> None:
        """Subscribe again from the subscription's position on ``socket``, retrying what the
        server says may succeed later; a lost connection leaves it to the reconnect."""
        base, cap = self._backoff
        for attempt in itertools.count():
            if self._socket is not socket or self._subscriptions.get(subscription.channel) is not (
                subscription
            ):
                return
            try:
                await self._request(
                    socket, "subscribe", subscription._params(), self._confirmer(subscription)
                )
                return
            except ConnectionLostError:
                return
            except RpcError as exc:
                if not self._retryable(exc):
                    self._forget(subscription, exc)
                    return
            await asyncio.sleep(backoff_delay(attempt, base=base, cap=cap))

    def _confirmer(self, subscription: Subscription) -> ResultHook:
        def confirm(result: Any) -> None:
            subscription._confirm(result)
            if self._on_recovery is not None and subscription.recovered is not None:
                asyncio.get_running_loop().call_soon(self._on_recovery, subscription)

        return confirm

    def _forget(self, subscription: Subscription, error: BaseException | None) -> None:
        if self._subscriptions.get(subscription.channel) is subscription:
            del self._subscriptions[subscription.channel]
            subscription._end(error)


# What one connection attempt may fail with; whether to try again is decided per error.
_CONNECT_ERRORS = (
    OSError,
    TimeoutError,
    WebSocketException,
    RpcError,
    ConnectionLostError,
    ProtocolViolationError,
)
