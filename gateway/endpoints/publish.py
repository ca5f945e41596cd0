"""``POST /channels/{channel}/publications``: the app's backend publishes with an API key."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.access import offered_api_key, require_api_key
from gateway.endpoints.body import read_json_object
from gateway.publishing import server_policy
from gateway.rate_limits import limit_publish
from gateway.services import services
from pushgate.core.channels import parse_channel
from pushgate.core.errors import ErrorKind, PushgateError

MAX_IDEMPOTENCY_KEY = 128


async def publish(request: Request) -> JSONResponse:
    svc = services(request)
    require_api_key(request.headers, svc.settings.auth.api_keys, auth_enabled=svc.auth.enabled)
    await limit_publish(svc, offered_api_key(request.headers), request.scope)
    channel = parse_channel(request.path_params["channel"])
    policy = server_policy(svc, channel)
    body = await read_json_object(request, svc.settings.limits)
    if "data" not in body:
        raise PushgateError(ErrorKind.INVALID_BODY, "data is required")
    idempotency = _idempotency_key(request)
    offset, epoch = await svc.backend.publish(
        channel.full,
        body["data"],
        policy,
        idempotency=(idempotency, svc.settings.auth.idempotency_ttl) if idempotency else None,
    )
    return JSONResponse({"offset": offset, "epoch": epoch})


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isprintable():
        message = f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable characters"
        raise PushgateError(ErrorKind.INVALID_IDEMPOTENCY_KEY, message)
    return key


ROUTES = [Route("/channels/{channel}/publications", publish, methods=["POST"])]
