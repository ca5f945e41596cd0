"""The pure half of the Python client: errors, message shapes, framing, backoff and dedupe.

No sockets here, so every rule is unit-tested directly; ``client.py`` does the I/O.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pushgate.core.errors import (
    CLOSE_POLICY,
    RETRYABLE_RPC_CODES,
    CloseCode,
    PushgateError,
    Reconnect,
    RpcCode,
)
from pushgate.core.protocol import Position, RequestId
from pushgate.core.wire import parse_offset


class ClientError(Exception):
    """A failure of the client or its connection (errors the server answers are ``RpcError``)."""


class ConnectionLostError(ClientError):
    """The socket dropped before the answer came: the call may or may not have taken effect."""

    def __init__(self, close_code: int | None) -> None:
        super().__init__(f"connection lost (close code {close_code})")
        self.close_code = close_code


class ClientClosedError(ClientError):
    """The client is closed: by ``close()``, by a close code that forbids reconnecting, because
    it could not connect, or because it gave up reconnecting."""

    def __init__(self, message: str, close_code: int | None = None) -> None:
        super().__init__(message)
        self.close_code = close_code


class ProtocolViolationError(ClientError):
    """The server sent a frame that is not a message of the protocol."""


class RpcError(Exception):
    """The gateway answered a call with a JSON-RPC error (docs/protocol.md, "Errors")."""

    def __init__(
        self,
        code: RpcCode,
        message: str,
        data: dict[str, Any] | None = None,
        *,
        request_id: RequestId | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.request_id = request_id

    @property
    def retryable(self) -> bool:
        """The same call may succeed later, unchanged (the server was busy or unavailable)."""
        return self.code in RETRYABLE_RPC_CODES


@dataclass(frozen=True, slots=True)
class Publication:
    """One publication delivered on a subscribed channel."""

    channel: str
    offset: str
    epoch: str
    data: Any

    @property
    def position(self) -> Position:
        return Position(self.epoch, self.offset)


@dataclass(frozen=True, slots=True)
class Resubscribe:
    """The server dropped a subscription it may have missed publications of: subscribe again
    from the last position delivered (docs/protocol.md, "Delivery")."""

    channel: str


@dataclass(frozen=True, slots=True)
class ServerCall:
    """A call the gateway makes to this client (a handler of the app's ``rpc`` routes did)."""

    id: str
    method: str
    params: Any


@dataclass(frozen=True, slots=True)
class Response:
    """A JSON-RPC response: ``error`` is set for an error answer, ``result`` otherwise."""

    id: RequestId | None
    result: Any
    error: RpcError | None


# Pure helpers: backoff, reconnect policy, ordering, framing


def backoff_delay(
    attempt: int, *, base: float, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)], so reconnecting clients spread
    out instead of arriving at a restarted gateway together. ``attempt`` counts from 0."""
    ceiling = min(cap, base * 2.0 ** min(attempt, 64))  # the exponent bound keeps floats finite
    return ceiling * rand()


def should_reconnect(close_code: int | None, *, renewable_token: bool) -> bool:
    """Whether a socket closed with ``close_code`` is worth reopening; ``None`` and 1006 are a
    socket that died without a close frame (a crashed or unreachable gateway)."""
    try:
        policy = CLOSE_POLICY[CloseCode(close_code)].reconnect if close_code else Reconnect.YES
    except ValueError:  # not one of ours (1006, a proxy's 1002): the socket died, try again
        return True
    if policy is Reconnect.WITH_NEW_TOKEN:
        return renewable_token
    return policy is Reconnect.YES


def is_new(position: Position | None, publication: Publication) -> bool:
    """Whether ``publication`` comes after ``position``; offsets only compare within an epoch,
    and a new epoch means the old history is gone, so its first publication is new."""
    if position is None or not position.offset or position.epoch != publication.epoch:
        return True
    return parse_offset(publication.offset) > parse_offset(position.offset)


def encode_request(request_id: int, method: str, params: Mapping[str, Any] | None) -> str:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = dict(params)
    return json.dumps(message, separators=(",", ":"))


def subscribe_params(
    channel: str, since: Position | None, token: str | None = None
) -> dict[str, Any]:
    params: dict[str, Any] = {"channel": channel}
    if since is not None:
        params["since"] = {"epoch": since.epoch, "offset": since.offset}
    if token is not None:
        params["token"] = token
    return params


def decode_message(
    frame: str | bytes,
) -> Response | Publication | Resubscribe | ServerCall | None:
    """A server frame as a response, a publication, a resubscribe or a call to this client; None
    for a notification this client does not know (a newer server may send more kinds)."""
    try:
        message = json.loads(frame)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolViolationError(f"frame is not JSON: {exc}") from None
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        raise ProtocolViolationError("frame is not a JSON-RPC 2.0 message")
    if "method" in message:
        return _server_message(message)
    if "error" in message:
        return Response(message.get("id"), None, _rpc_error(message["error"], message.get("id")))
    if "result" not in message or "id" not in message:
        raise ProtocolViolationError("response has neither result nor error")
    return Response(message["id"], message["result"], None)


def _server_message(message: dict[str, Any]) -> Publication | Resubscribe | ServerCall | None:
    method, call_id = message["method"], message.get("id")
    if call_id is not None:
        if not isinstance(call_id, str) or not isinstance(method, str):
            raise ProtocolViolationError("a server call needs a string id and method")
        return ServerCall(call_id, method, message.get("params"))
    return _notification(method, message.get("params"))


def _notification(method: object, params: object) -> Publication | Resubscribe | None:
    if method == "publication":
        return _publication(params)
    if method == "resubscribe":
        channel = params.get("channel") if isinstance(params, dict) else None
        if not isinstance(channel, str):
            raise ProtocolViolationError("resubscribe params must name a channel")
        return Resubscribe(channel)
    return None


def _publication(params: object) -> Publication:
    if not isinstance(params, dict) or "data" not in params:
        raise ProtocolViolationError("publication params must be an object with data")
    channel, offset, epoch = (params.get(name) for name in ("channel", "offset", "epoch"))
    if not (isinstance(channel, str) and isinstance(offset, str) and isinstance(epoch, str)):
        raise ProtocolViolationError("publication channel, offset and epoch must be strings")
    try:
        parse_offset(offset)
    except PushgateError as exc:
        raise ProtocolViolationError(f"publication offset: {exc.message}") from None
    return Publication(channel, offset, epoch, params["data"])


def _rpc_error(error: object, request_id: RequestId | None) -> RpcError:
    if not isinstance(error, dict):
        raise ProtocolViolationError("error must be an object")
    raw_code, message, data = error.get("code"), error.get("message"), error.get("data")
    if not isinstance(raw_code, int) or not isinstance(message, str):
        raise ProtocolViolationError("error code must be an integer and message a string")
    if data is not None and not isinstance(data, dict):
        raise ProtocolViolationError("error data must be an object")
    try:
        code = RpcCode(raw_code)
    except ValueError:
        # A code newer than this client: still an error answer, never a dropped response.
        code, data = RpcCode.INTERNAL_ERROR, {**(data or {}), "code": raw_code}
    return RpcError(code, message, data, request_id=request_id)


def encode_answer(call_id: str, result: Any) -> str:
    """This client's answer to a server call; raises TypeError when ``result`` is not JSON."""
    return json.dumps({"jsonrpc": "2.0", "id": call_id, "result": result}, separators=(",", ":"))


def encode_failure(call_id: str, error: BaseException | None, method: str) -> str:
    """The error answer to a server call: what the handler raised (its type, message and
    traceback, which the gateway logs), or ``None``: no handler is registered for ``method``."""
    if error is None:
        body: dict[str, Any] = {
            "code": int(RpcCode.RPC_UNKNOWN_METHOD),
            "message": f"no handler for {method!r} on this client",
        }
    else:
        stack = "".join(traceback.format_exception(error))
        data = {"type": type(error).__name__, "message": str(error), "stack": stack}
        body = {"code": int(RpcCode.RPC_ERROR), "message": str(error), "data": data}
    return json.dumps({"jsonrpc": "2.0", "id": call_id, "error": body}, separators=(",", ":"))


def rpc_params(method: str, params: Any) -> dict[str, Any]:
    """The params of an ``rpc`` call: ``params`` left out when None."""
    return {"method": method} if params is None else {"method": method, "params": params}


def as_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolViolationError(f"expected an object as result, got {value!r}")
    return value


ResultHook = Callable[[Any], None]


class PendingCalls:
    """Calls waiting for their responses, by id. Ids never repeat within a client, so a late
    answer from a dead connection can never complete a call made on the next one."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[asyncio.Future[Any], ResultHook | None]] = {}

    def open(self, on_result: ResultHook | None = None) -> tuple[int, asyncio.Future[Any]]:
        """A new id and the future its answer completes; ``on_result`` sees a successful
        result before any later frame is read (so a subscription is set up before the
        publications that follow its answer)."""
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = (future, on_result)
        return request_id, future

    def settle(self, response: Response) -> bool:
        """Complete the call ``response`` answers; False when no call waits for it."""
        if not isinstance(response.id, int) or response.id not in self._waiting:
            return False
        future, on_result = self._waiting.pop(response.id)
        if future.done():  # its caller timed out or was cancelled
            return True
        if response.error is not None:
            future.set_exception(response.error)
            return True
        try:
            if on_result is not None:
                on_result(response.result)
        except ProtocolViolationError as exc:
            future.set_exception(exc)
        else:
            future.set_result(response.result)
        return True

    def discard(self, request_id: int) -> None:
        self._waiting.pop(request_id, None)

    def fail_all(self, error: ClientError) -> None:
        waiting, self._waiting = self._waiting, {}
        for future, _hook in waiting.values():
            if not future.done():
                future.set_exception(error)

    def __len__(self) -> int:
        return len(self._waiting)
