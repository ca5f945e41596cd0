"""``python -m examples.proxy_backend``: ``pushgate dev`` forwarding ``rpc`` to a Starlette app.

Starts the backend (``examples.proxy_backend.app``) under uvicorn and ``pushgate dev`` with
``PUSHGATE_RPC_PROXY_URL`` pointing at it, then calls it through the gateway: a result, an
exception of the backend's, and a method it does not have.
"""

from __future__ import annotations

import asyncio
from typing import Any

from examples.devstack import main_of, processes, say, start_app, start_dev
from pushgate.client import PushgateClient, RpcError


async def call(client: PushgateClient, method: str, params: Any) -> None:
    try:
        say(f"{method} {params} -> {await client.rpc(method, params)}")
    except RpcError as exc:
        say(f"{method} {params} -> error {int(exc.code)}: {exc.message}")


async def demo(ws_url: str) -> None:
    async with PushgateClient(ws_url) as client:
        await call(client, "greet", {"name": "ann"})
        await call(client, "divide", {"a": 1, "b": 4})
        await call(client, "divide", {"a": 1, "b": 0})
        await call(client, "shout", {"text": "hi"})


def run() -> None:
    with processes() as running:
        backend = start_app(running, "examples.proxy_backend.app:app", "/healthz")
        proxy_url = f"{backend.http_url}/rpc"
        gateway = start_dev(running, {"PUSHGATE_RPC_PROXY_URL": proxy_url})
        say(f"pushgate dev on {gateway.http_url}, PUSHGATE_RPC_PROXY_URL={proxy_url}")
        asyncio.run(demo(gateway.ws_url))


if __name__ == "__main__":
    main_of(run)
