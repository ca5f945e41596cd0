"""Where the shared rate limits (``pushgate.broker.ratelimit``) apply, and who each one counts.

Client addresses are the ASGI ``client``: behind a proxy, run uvicorn with ``--proxy-headers
--forwarded-allow-ips=<the proxy's address>`` so that it is the client's, not the proxy's.
"""

from __future__ import annotations

from starlette.types import Scope
from starlette.websockets import WebSocket

from gateway.services import Services
from pushgate.broker.ratelimit import address, hashed
from pushgate.core.channels import Identity
from pushgate.core.errors import RateLimitedError
from pushgate.core.wire import close_reason


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return address(client[0] if client else None)


async def limit_submission(svc: Services, identity: Identity, scope: Scope) -> None:
    """One job submission, on the user's budget, or the client address's when auth is off."""
    who = hashed("user", identity.user) if identity.user else client_address(scope)
    await svc.rates.submit.take(who)


async def limit_publish(svc: Services, api_key: str | None, scope: Scope) -> None:
    """One call of the publish API, on its key's budget (the address's without a key)."""
    await svc.rates.publish.take(hashed("key", api_key) if api_key else client_address(scope))


async def limit_connection(svc: Services, scope: Scope) -> None:
    """One new WebSocket or SSE stream, on the client address's budget."""
    bucket = svc.rates.connect
    if bucket.limits:  # else no address to work out: a connect storm pays for every one
        await bucket.take(client_address(scope))


async def admit_socket(websocket: WebSocket, svc: Services) -> bool:
    """``limit_connection`` for an accepted socket: over the budget, it is closed with 4429."""
    try:
        await limit_connection(svc, websocket.scope)
    except RateLimitedError as exc:
        await websocket.close(exc.kind.close_code, close_reason(exc.message))
        return False
    return True
