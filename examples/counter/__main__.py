"""``python -m examples.counter``: ``pushgate dev`` serving ``Counter``, and two clients.

Each connection counts on its own, ``counter._reset`` cannot be called, and a new connection
starts from 0.
"""

from __future__ import annotations

import asyncio

from examples.devstack import main_of, processes, say, start_dev
from pushgate.client import PushgateClient, RpcError

ROUTES = "examples.counter.routes:ROUTES"


async def demo(ws_url: str) -> None:
    async with PushgateClient(ws_url) as ann, PushgateClient(ws_url) as bob:
        for n in (1, 2, 3):
            say(f"ann: counter.add {n} -> {await ann.rpc('counter.add', n)}")
        say(f"bob: counter.add 10 -> {await bob.rpc('counter.add', 10)}")
        say(f"ann: counter.get -> {await ann.rpc('counter.get')}")
        say(f"bob: counter.get -> {await bob.rpc('counter.get')}")
        try:
            await ann.rpc("counter._reset")
        except RpcError as exc:
            say(f"ann: counter._reset -> error {int(exc.code)}: {exc.message}")
        try:
            await ann.rpc("counter.add", "two")
        except RpcError as exc:
            say(f"ann: counter.add 'two' -> error {int(exc.code)}: {exc.message}")
    async with PushgateClient(ws_url) as again:
        say(f"ann, on a new connection: counter.get -> {await again.rpc('counter.get')}")


def run() -> None:
    with processes() as running:
        gateway = start_dev(running, {"PUSHGATE_RPC_ROUTES": ROUTES})
        say(f"pushgate dev on {gateway.http_url}, PUSHGATE_RPC_ROUTES={ROUTES}")
        asyncio.run(demo(gateway.ws_url))


if __name__ == "__main__":
    main_of(run)
