"""A raw JSON-RPC WebSocket client for protocol tests: frames in, frames out, nothing hidden."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import websockets

WAIT = 20.0


class RawRpc:
    def __init__(self, socket: websockets.ClientConnection) -> None:
        self.socket = socket
        self.publications: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    async def send(self, message: object) -> None:
        await self.socket.send(message if isinstance(message, str) else json.dumps(message))

    async def recv(self) -> dict[str, Any]:
        async with asyncio.timeout(WAIT):
            message: dict[str, Any] = json.loads(await self.socket.recv())
        return message

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a request and return its response; notifications meanwhile are kept."""
        request_id = next(self._ids)
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            request["params"] = params
        await self.send(request)
        while True:
            message = await self.recv()
            if message.get("method") == "publication":
                self.publications.append(message["params"])
            else:
                assert message["id"] == request_id, message
                return message

    async def result(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.call(method, params)
        assert "result" in response, response
        result: dict[str, Any] = response["result"]
        return result

    async def error_code(self, method: str, params: dict[str, Any] | None = None) -> int:
        response = await self.call(method, params)
        assert "error" in response, response
        return int(response["error"]["code"])

    async def publications_until(self, count: int) -> list[dict[str, Any]]:
        while len(self.publications) < count:
            message = await self.recv()
            assert message.get("method") == "publication", message
            self.publications.append(message["params"])
        return self.publications

    async def closed(self) -> tuple[int | None, str]:
        """Read until the server closes; returns its close code and reason."""
        async with asyncio.timeout(WAIT):
            try:
                while True:
                    message = json.loads(await self.socket.recv())
                    if message.get("method") == "publication":
                        self.publications.append(message["params"])
            except websockets.ConnectionClosed:
                pass
        return self.socket.close_code, self.socket.close_reason or ""


@asynccontextmanager
async def rpc(
    ws_url: str, *, receive_buffer: int | None = None, source: str | None = None
) -> AsyncIterator[RawRpc]:
    """``receive_buffer`` pins the client's TCP receive buffer (and stops the kernel growing it),
    so a client that stops reading pushes back on the server after kilobytes, not megabytes.
    ``source``: the loopback address to connect from (127.0.0.x), for per-address limits."""
    sock = None
    if receive_buffer is not None:
        host, port = urlsplit(ws_url).hostname, urlsplit(ws_url).port
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.connect((host, port))
    max_queue = 1 if receive_buffer is not None else 16
    local: dict[str, Any] = {"local_addr": (source, 0)} if source is not None else {}
    async with websockets.connect(
        f"{ws_url}/ws", sock=sock, max_queue=max_queue, **local
    ) as client:
        yield RawRpc(client)
