"""One connection's ``rpc`` calls: queued, run one at a time, each answered in bounded time.

The socket's reader hands a call over and goes on reading (so the answers to the server's own
calls to this client still arrive while a handler waits for one). Calls of one connection run
one at a time in the order they came, so a class route's instance never sees two at once,
except after a timeout: a sync handler cannot be stopped and runs on in its thread. Each call
is answered within ``PUSHGATE_RPC_TIMEOUT`` of its arrival: one that timed out while waiting
its turn is never started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.rpc.client_calls import ClientCalls
from gateway.rpc.context import Publisher, RpcContext
from pushgate.core.channels import Identity
from pushgate.core.errors import ErrorKind, PushgateError
from pushgate.core.protocol import RequestId, RpcParams, encode_error, encode_result
from pushgate.core.rpc import ClientAnswer, MethodName, error_of, timed_out, unknown_method
from pushgate.core.settings import RpcSettings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Caller:
    """One connection as a backend sees it: its context, its token, its class instances."""

    context: RpcContext
    token: Callable[[], str | None]  # the connection token, once checked (auth on)
    instances: dict[str, object] = field(default_factory=dict)  # by route, dropped on close


class RpcBackend(Protocol):
    """Who serves the calls: in-process routes, or the app's HTTP endpoint."""

    async def call(self, caller: Caller, method: MethodName, params: Any) -> Any:
        """The call's result; raises PushgateError, or the handler's own exception."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Call:
    request_id: RequestId | None
    params: RpcParams
    deadline: float


class RpcCalls:
    """The ``rpc`` calls of one connection, and the server's calls to its client."""

    __slots__ = (
        "_backend", "_caller", "_client_calls", "_loop", "_push", "_queue", "_settings", "_worker",
    )  # fmt: skip

    def __init__(
        self,
        backend: RpcBackend | None,
        settings: RpcSettings,
        *,
        client: str,
        identity: Callable[[], Identity],
        token: Callable[[], str | None],
        publish: Publisher,
        push: Callable[[str], None],
    ) -> None:
        self._backend = backend
        self._settings = settings
        self._push = push
        self._loop = asyncio.get_running_loop()
        self._client_calls = ClientCalls(push, limit=settings.client_calls, client=client)
        context = RpcContext(
            client=client,
            identity=identity,
            publish=publish,
            calls=self._client_calls,
            timeout=settings.timeout,
        )
        self._caller = Caller(context, token)
        self._queue: deque[_Call] = deque()
        self._worker: asyncio.Task[None] | None = None

    def submit(self, request_id: RequestId | None, params: RpcParams) -> None:
        """Queue a call; raises PushgateError (limit exceeded) when too many are queued."""
        limit = self._settings.max_queued
        if len(self._queue) >= limit:
            raise PushgateError(
                ErrorKind.LIMIT_EXCEEDED, f"at most {limit} rpc calls may wait per connection"
            )
        deadline = self._loop.time() + self._settings.timeout
        self._queue.append(_Call(request_id, params, deadline))
        if self._worker is None:
            self._worker = self._loop.create_task(self._run())

    def settle(self, answer: ClientAnswer) -> None:
        """The client answered one of the server's calls."""
        self._client_calls.settle(answer)

    async def close(self) -> None:
        """The connection is over: stop its calls, fail the server's, drop its instances."""
        self._queue.clear()
        self._client_calls.close()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        self._caller.instances.clear()

    async def _run(self) -> None:
        try:
            while self._queue:
                call = self._queue[0]  # counted as queued while it runs
                frame = await self._answer(call)
                self._queue.popleft()
                if frame is not None:
                    self._push(frame)
        finally:
            self._worker = None

    async def _answer(self, call: _Call) -> str | None:
        """The response frame of ``call`` (None for a notification)."""
        method = call.params.method.full
        try:
            result = await self._result(call)
            return None if call.request_id is None else encode_result(call.request_id, result)
        except PushgateError as exc:
            error = exc
        except Exception as exc:  # the app's exception, not ours: never a 500
            fields = {"client": self._caller.context.client, "method": method}
            log.info("rpc %s raised %r", method, exc, exc_info=exc, extra=fields)
            error = error_of(exc)
        return None if call.request_id is None else encode_error(call.request_id, error)

    async def _result(self, call: _Call) -> Any:
        method = call.params.method
        if self._backend is None:
            raise unknown_method(method.full)
        timeout = asyncio.timeout_at(call.deadline)
        try:
            async with timeout:
                return await self._backend.call(self._caller, method, call.params.params)
        except TimeoutError:
            if not timeout.expired():
                raise  # the handler's own
            raise timed_out(method.full, self._settings.timeout) from None
