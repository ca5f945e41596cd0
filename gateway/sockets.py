"""What both WebSocket endpoints do: subscribe a feed, and run a socket's reader and writer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from starlette.websockets import WebSocketDisconnect

from gateway.hub import SubscribeError
from gateway.outbox import Feed
from gateway.services import Services
from pushgate.protocol import ErrorCode, RpcError

SUBSCRIBE_TIMEOUT = 10.0


async def subscribe_feed(svc: Services, channel: str, feed: Feed) -> None:
    """Subscribe ``feed`` through the hub; RpcError(UNAVAILABLE) when Redis does not confirm."""
    try:
        async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
            await svc.hub.subscribe(channel, feed)
    except (TimeoutError, SubscribeError):
        await svc.hub.unsubscribe(channel, feed)
        raise RpcError(ErrorCode.UNAVAILABLE, "the event stream is unavailable; retry") from None


async def run_until_either_ends(*coroutines: Coroutine[Any, Any, None]) -> None:
    """Run a socket's writer and reader; when one ends (closed either way), stop the other."""
    tasks = [asyncio.create_task(c) for c in coroutines]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await task
