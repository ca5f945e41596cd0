"""Peer: a Starlette WebSocket gateway on ``broadcaster`` with its Redis backend.

The common Python approach, written after broadcaster's README (its chat example): one
``Broadcast`` per process, connected in the lifespan; each socket subscribes through
``broadcast.subscribe`` and forwards every event as a text frame, while a receive loop notices
the client leaving. The client names its channel in its first frame, ``{"subscribe": "<name>"}``,
and is answered ``{"subscribed": "<name>"}`` once the subscription is in place. Publishers call
``broadcast.publish(channel, message)``, which is a plain Redis ``PUBLISH`` on the channel.

Run: ``BENCH_REDIS_URL=redis://... uvicorn bench.peers.broadcaster_app:app``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from broadcaster import Broadcast
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

broadcast = Broadcast(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))


@asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    await broadcast.connect()
    try:
        yield
    finally:
        await broadcast.disconnect()


async def healthz(_request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def ws_endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    request = await websocket.receive_json()
    channel = str(request["subscribe"])
    async with broadcast.subscribe(channel=channel) as subscriber:
        await websocket.send_json({"subscribed": channel})
        async with anyio.create_task_group() as task_group:

            async def receiver() -> None:
                while (await websocket.receive())["type"] != "websocket.disconnect":
                    pass
                task_group.cancel_scope.cancel()

            task_group.start_soon(receiver)
            async for event in subscriber:  # type: ignore[union-attr]
                if event is not None:
                    await websocket.send_text(event.message)


app = Starlette(
    routes=[Route("/healthz", healthz), WebSocketRoute("/ws", ws_endpoint)], lifespan=lifespan
)
