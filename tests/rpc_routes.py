"""In-process routes the tests serve (``PUSHGATE_RPC_ROUTES=tests.rpc_routes:ROUTES``): each
one exercises one rule of docs/protocol.md, "Application calls"."""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from typing import Any

from gateway.rpc.context import RpcContext
from pushgate.core.errors import ErrorKind, PushgateError


async def whoami(ctx: RpcContext, params: Any) -> dict[str, Any]:
    return {"user": ctx.user, "client": ctx.client, "params": params}


def total(ctx: RpcContext, params: list[int]) -> dict[str, Any]:
    """Sync: runs in the rpc pool, never on the event loop's thread."""
    on_loop = threading.current_thread() is threading.main_thread()
    return {"sum": sum(params), "on_loop_thread": on_loop}


def thread(ctx: RpcContext, seconds: float) -> str:
    """The pool thread a sync handler ran in, after holding it ``seconds``."""
    time.sleep(seconds)
    return threading.current_thread().name


def fail(ctx: RpcContext, params: Any) -> None:
    raise ValueError(f"cannot take {params!r}")


async def refuse(ctx: RpcContext, params: Any) -> None:
    raise PushgateError(ErrorKind.PERMISSION_DENIED, "not for you")


async def nap(ctx: RpcContext, seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


def block(ctx: RpcContext, seconds: float) -> float:
    time.sleep(seconds)  # holds its pool thread, not the loop
    return seconds


def not_json(ctx: RpcContext, params: Any) -> object:
    return object()


async def shout(ctx: RpcContext, params: dict[str, Any]) -> dict[str, str]:
    return await ctx.publish(params["channel"], params["data"])


def shout_sync(ctx: RpcContext, params: dict[str, Any]) -> dict[str, str]:
    return ctx.sync(ctx.publish(params["channel"], params["data"]))


async def ask(ctx: RpcContext, params: dict[str, Any]) -> Any:
    """Calls the caller back: ``{"method", "params"?, "timeout"?}``."""
    return await ctx.call_client(
        params["method"], params.get("params"), timeout=params.get("timeout")
    )


async def ask_many(ctx: RpcContext, count: int) -> list[str]:
    """``count`` calls back at once (``wait`` on the client); what each ended with."""

    async def one(n: int) -> str:
        try:
            return str(await ctx.call_client("wait", n, timeout=2))
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"

    return list(await asyncio.gather(*(one(n) for n in range(count))))


class Tally:
    """Per-connection state: what this connection added, in order."""

    def __init__(self, ctx: RpcContext) -> None:
        self.seen: list[Any] = []
        self.client = ctx.client
        LIVE_TALLIES.add(self)

    async def add(self, value: Any) -> list[Any]:
        await asyncio.sleep(0.01)  # calls overlapping here would interleave their effects
        self.seen.append(value)
        return self.seen

    def get(self, params: Any) -> dict[str, Any]:
        return {"seen": self.seen, "client": self.client}

    def _wipe(self, params: Any) -> None:
        self.seen.clear()

    @property
    def size(self) -> int:
        return len(self.seen)


LIVE_TALLIES: weakref.WeakSet[Tally] = weakref.WeakSet()


def live_tallies(ctx: RpcContext, params: Any) -> int:
    """How many ``Tally`` instances this gateway still holds."""
    return len(LIVE_TALLIES)


ROUTES = {
    "whoami": whoami,
    "total": total,
    "thread": thread,
    "fail": fail,
    "refuse": refuse,
    "nap": nap,
    "block": block,
    "not_json": not_json,
    "shout": shout,
    "shout_sync": shout_sync,
    "ask": ask,
    "ask_many": ask_many,
    "tally": Tally,
    "live_tallies": live_tallies,
}
