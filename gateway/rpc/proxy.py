"""The RPC proxy: every ``rpc`` call is a POST to the app's endpoint (``PUSHGATE_RPC_PROXY_URL``).

Request: ``{"method", "params", "user", "client"}``, with the caller's connection token as
``Authorization: Bearer <token>`` when authentication is on (a token the gateway checked).
Answers, mapped to the codes of in-process routes:

- ``200 {"result": any}``: the result;
- ``200 {"error": {"type"?, "message"}}``: the handler's error (``rpc_error``);
- ``404``: unknown method; ``401`` / ``403``: unauthorized / permission denied;
- ``503`` or no connection: unavailable (retry);
- anything else, a body that is not one of these, or over ``MAX_ANSWER_BYTES``: ``rpc_error``
  of type ``ProxyError``, logged.

At most ``PUSHGATE_RPC_PROXY_CONCURRENCY`` requests are in flight per gateway; the others wait
their turn within their call's timeout. The only module of the gateway that imports httpx.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx

from gateway.rpc.calls import Caller
from pushgate.core.errors import ErrorKind, PushgateError
from pushgate.core.rpc import MethodName, handler_error, unknown_method

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 1024 * 1024
_REFUSALS = {
    401: ErrorKind.UNAUTHORIZED,
    403: ErrorKind.PERMISSION_DENIED,
    503: ErrorKind.UNAVAILABLE,
}


class ProxyError(Exception):
    """The endpoint answered something that is not an answer of the proxy protocol."""


class RpcProxy:
    """Calls forwarded to the app's HTTP endpoint, a bounded number at a time."""

    def __init__(self, url: str, concurrency: int) -> None:
        self._url = url
        self._slots = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        # No timeout of its own: every call runs under its rpc deadline.
        self._http = httpx.AsyncClient(limits=limits, timeout=None, trust_env=False)
        # httpx logs every request at info: an access log of the proxy, which gateways do not
        # keep by default (failures are logged here).
        logging.getLogger("httpx").setLevel(logging.WARNING)

    async def call(self, caller: Caller, method: MethodName, params: Any) -> Any:
        context = caller.context
        body = {"method": method.full, "params": params, "user": context.user}
        body["client"] = context.client
        headers = {"accept-encoding": "identity"}  # what is counted is what arrives
        token = caller.token()
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        async with self._slots:
            try:
                status, answer = await self._post(body, headers)
            except httpx.ConnectError as exc:  # nothing was sent: safe to retry
                raise PushgateError(
                    ErrorKind.UNAVAILABLE, f"the rpc backend cannot be reached: {exc}"
                ) from None
            except (httpx.HTTPError, ProxyError) as exc:
                fields = {"client": context.client, "method": method.full}
                log.warning("rpc proxy %s: %s", method.full, exc, extra=fields)
                raise handler_error("ProxyError", f"the rpc backend failed: {exc}") from None
        return _result(method, status, answer)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
        async with self._http.stream("POST", self._url, json=body, headers=headers) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise ProxyError(f"answer over {MAX_ANSWER_BYTES} bytes")
                chunks.append(chunk)
        if response.status_code != 200:
            return response.status_code, None
        try:
            return 200, json.loads(b"".join(chunks))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ProxyError("the answer is not JSON") from None


def _result(method: MethodName, status: int, answer: Any) -> Any:
    if status == 404:
        raise unknown_method(method.full)
    if status in _REFUSALS:
        raise PushgateError(_REFUSALS[status], f"the rpc backend refused {method.full} ({status})")
    if status != 200:
        log.warning("rpc proxy %s: answered %d", method.full, status, extra={"method": method.full})
        raise handler_error("ProxyError", f"the rpc backend answered {status}")
    if isinstance(answer, dict) and "result" in answer:
        return answer["result"]
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        kind = error.get("type")
        raise handler_error(kind if isinstance(kind, str) and kind else "Error", error["message"])
    log.warning("rpc proxy %s: an answer with neither result nor error", method.full,
                extra={"method": method.full})  # fmt: skip
    raise handler_error("ProxyError", "the rpc backend's answer has neither result nor error")
