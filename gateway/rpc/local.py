"""In-process routes: the app's functions and classes, run in the gateway.

A function route is called as ``fn(ctx, params)``. A class route is instantiated as
``Cls(ctx)`` on the connection's first call to it, and ``route.member`` calls
``instance.member(params)``; the instance lives with the connection and is dropped when it
closes (a reconnect, to this gateway or another, starts afresh: durable state belongs in Redis
or the app's database). Async handlers run on the event loop; sync ones, constructors
included, in a pool of ``PUSHGATE_RPC_THREADS`` threads of their own, so a slow one blocks
neither the loop nor the gateway's other work.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gateway.rpc.calls import Caller
from gateway.rpc.routes import Handler, RouteTable
from pushgate.core.rpc import MethodName, unknown_method


class LocalRpc:
    """Calls served by the route table, each on the loop or in the pool as it needs."""

    def __init__(self, routes: RouteTable, threads: int) -> None:
        self._routes = routes
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="pushgate-rpc")

    async def call(self, caller: Caller, method: MethodName, params: Any) -> Any:
        target = self._routes.resolve(method)
        if target is None:
            raise unknown_method(method.full)
        if target.member is None:
            return await self._run(target.handler, caller.context, params)
        instance = caller.instances.get(target.route)
        if instance is None:
            instance = await self._run(target.handler, caller.context)
            caller.instances[target.route] = instance
        return await self._run(getattr(instance, target.member), params)

    async def aclose(self) -> None:
        # Threads still running a handler finish on their own; nothing waits for them.
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, handler: Handler, *args: Any) -> Any:
        if inspect.iscoroutinefunction(handler):
            return await handler(*args)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._pool, functools.partial(handler, *args))
        # A sync callable may still hand back an awaitable (an object with an async __call__).
        return await result if inspect.isawaitable(result) else result
