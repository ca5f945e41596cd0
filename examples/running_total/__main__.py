"""``python -m examples.running_total``: two gateways on one Redis, a client on each.

Starts a Redis, ``pushgate dev`` (a gateway and a worker) and a second gateway, both serving
``examples.running_total.routes:ROUTES``. ann (on the first) and bob (on the second) send
numbers in turn; after each, both hear ``Server records total=N`` from the server.
"""

from __future__ import annotations

import asyncio
import json

from examples.devstack import Endpoint, main_of, processes, say, start_dev, start_gateway
from examples.running_total.routes import CHANNEL, NAMESPACES
from pushgate.cli.redis_server import RedisServer
from pushgate.client import PushgateClient, Subscription

ROUTES = "examples.running_total.routes:ROUTES"
HEARING_TIMEOUT = 10.0


async def hear(name: str, pushes: Subscription) -> None:
    async with asyncio.timeout(HEARING_TIMEOUT):
        publication = await anext(pushes)
    say(f"  {name} hears: {publication.data['text']}")


async def demo(first: Endpoint, second: Endpoint) -> None:
    async with PushgateClient(first.ws_url) as ann, PushgateClient(second.ws_url) as bob:
        clients = {"ann": ann, "bob": bob}
        pushes = {name: await client.subscribe(CHANNEL) for name, client in clients.items()}
        for name, number in [("ann", 1), ("bob", 2), ("ann", 3), ("bob", 4)]:
            where = "first" if name == "ann" else "second"
            say(f"{name} (on the {where} gateway) sends {number}")
            await clients[name].rpc("add", number)
            for listener, subscription in pushes.items():
                await hear(listener, subscription)
        totals = {await client.rpc("total") for client in clients.values()}
        say(f"both gateways agree: total={totals.pop()}" if len(totals) == 1 else "disagree!")


def run() -> None:
    redis = RedisServer(quiet=True).start()
    env = {
        "PUSHGATE_REDIS_URL": redis.url,
        "PUSHGATE_RPC_ROUTES": ROUTES,
        "PUSHGATE_NAMESPACES": json.dumps(NAMESPACES),
    }
    try:
        with processes() as running:
            first = start_dev(running, env)
            second = start_gateway(running, env)
            say(f"pushgate dev on {first.http_url}, a second gateway on {second.http_url}")
            asyncio.run(demo(first, second))
    finally:
        redis.stop()


if __name__ == "__main__":
    main_of(run)
