"""What both WebSocket endpoints do to subscribe a feed."""

from __future__ import annotations

import asyncio

from gateway.delivery.feed import Feed
from gateway.services import Services
from pushgate.core.errors import ErrorKind, PushgateError

SUBSCRIBE_TIMEOUT = 10.0


async def subscribe_feed(svc: Services, channel: str, feed: Feed) -> None:
    """Subscribe ``feed`` through the hub; PushgateError(UNAVAILABLE) when Redis does not confirm in
    time (it is down, or reconnecting)."""
    try:
        async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
            await svc.hub.subscribe(channel, feed)
    except TimeoutError:
        svc.hub.unsubscribe(channel, feed)
        raise PushgateError(
            ErrorKind.UNAVAILABLE, "the event stream is unavailable; retry"
        ) from None
