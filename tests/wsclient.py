"""A real WebSocket client that reads a job socket to its end."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import websockets

READ_TIMEOUT = 30.0


@dataclass
class Transcript:
    frames: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""

    @property
    def types(self) -> list[str]:
        return [frame["data"]["type"] for frame in self.frames]

    @property
    def offsets(self) -> list[str]:
        return [frame["offset"] for frame in self.frames]

    def event(self, kind: str) -> dict[str, Any]:
        (found,) = [f["data"] for f in self.frames if f["data"]["type"] == kind]
        assert isinstance(found, dict)
        return found


async def read_all(url: str, timeout: float = READ_TIMEOUT) -> Transcript:
    """Connect and collect every frame until the server closes the socket."""
    async with websockets.connect(url) as socket:
        return await read_until_closed(socket, timeout)


async def read_until_closed(
    socket: websockets.ClientConnection, timeout: float = READ_TIMEOUT
) -> Transcript:
    transcript = Transcript()
    async with asyncio.timeout(timeout):
        # Iteration stops quietly on 1000/1001 and raises on every other close code.
        with contextlib.suppress(websockets.ConnectionClosedError):
            async for message in socket:
                transcript.frames.append(json.loads(message))
    if socket.close_code is not None:
        transcript.close_code = socket.close_code
        transcript.close_reason = socket.close_reason or ""
    return transcript
