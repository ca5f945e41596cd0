"""``RpcContext``: what an in-process handler knows of its caller, and what it may do."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from gateway.rpc.client_calls import ClientCalls
from pushgate.core.channels import Identity

T = TypeVar("T")
Publisher = Callable[[str, Any], Awaitable[dict[str, str]]]


class RpcContext:
    """One connection as its handlers see it: who it is, publishing, and calls to the client.

    One context per connection, passed to every function route and to the constructor of every
    class route. From a sync handler (which runs in a thread) use ``ctx.sync(ctx.publish(...))``.
    """

    __slots__ = ("_calls", "_identity", "_loop", "_publish", "_timeout", "client")

    def __init__(
        self,
        *,
        client: str,
        identity: Callable[[], Identity],
        publish: Publisher,
        calls: ClientCalls,
        timeout: float,
    ) -> None:
        self.client = client  # the connection's id, as ``connect`` answered it
        self._identity = identity
        self._publish = publish
        self._calls = calls
        self._timeout = timeout
        self._loop = asyncio.get_running_loop()

    @property
    def user(self) -> str | None:
        """The ``sub`` of the connection's token; None with authentication off."""
        return self._identity().user

    async def publish(self, channel: str, data: Any) -> dict[str, str]:
        """Publish ``data`` on ``channel`` as the server does (any configured namespace but
        ``job``, whatever clients may do there); returns ``{"offset", "epoch"}``."""
        return await self._publish(channel, data)

    async def call_client(
        self,
        method: str,
        params: Any = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - per call, over RPC_TIMEOUT
    ) -> Any:
        """Call a handler the client registered under ``method``; returns its result, or raises
        ClientCallError (it threw, has no such handler, did not answer in time, or left)."""
        return await self._calls.call(method, params, self._timeout if timeout is None else timeout)

    def sync(self, awaitable: Coroutine[Any, Any, T]) -> T:
        """Run ``awaitable`` on the gateway's event loop from a sync handler's thread."""
        try:
            on_the_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            on_the_loop = False
        if on_the_loop:  # waiting here would block the very loop it waits for
            awaitable.close()
            raise RuntimeError("ctx.sync is for sync handlers; an async one awaits instead")
        return asyncio.run_coroutine_threadsafe(awaitable, self._loop).result()
