"""The realtime protocol of ``WS /ws`` (docs/protocol.md) as pure code: no sockets, no Redis.

``parse_request`` turns a frame into a ``Request``, ``parse_params`` into typed parameters, and
``Session`` holds the per-connection rules (connect first, subscription limit, rate limit). The
gateway endpoint only moves frames in and out and calls the backend.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pushgate.core.channels import Channel, ChannelNameError, Identity, parse_channel
from pushgate.core.errors import ErrorKind, PushgateError
from pushgate.core.rpc import ClientAnswer, MethodName, is_answer, parse_answer, parse_method
from pushgate.core.wire import (
    OffsetKey,
    lenient_json,
    parse_json,
    parse_offset,
    validate_request_id,
    validate_url,
)

MAX_HISTORY_LIMIT = 100
_COMPACT = (",", ":")


RequestId = int | str


class RequestError(PushgateError):
    """A frame refused before it became a ``Request``; ``request_id`` is its id, when it had one."""

    def __init__(self, kind: ErrorKind, message: str, request_id: RequestId | None = None) -> None:
        super().__init__(kind, message)
        self.request_id = request_id


def invalid_params(message: str, name: str) -> PushgateError:
    return PushgateError(ErrorKind.INVALID_PARAMS, message, {"field": name})


@dataclass(frozen=True, slots=True)
class Request:
    """A parsed JSON-RPC request; ``id`` None means a notification, never answered."""

    id: RequestId | None  # None: a notification, never answered
    method: str
    params: dict[str, Any]


def parse_request(text: str | bytes) -> Request | ClientAnswer:
    """A client frame: a request, or the client's answer to a call the server made. A frame that
    is JSON but holds a value strict parsers refuse (NaN, say) is answered with its id, so the
    client knows which call failed."""
    try:
        message = parse_json(text, "frame")
    except PushgateError as exc:
        if exc.kind is not ErrorKind.INVALID_JSON_VALUE:
            raise RequestError(ErrorKind.PARSE_ERROR, exc.message) from None
        try:
            refused = lenient_json(text)
        except (ValueError, RecursionError):
            raise RequestError(ErrorKind.PARSE_ERROR, exc.message) from None
        answered = _request_from(refused)
        request_id = answered.id if isinstance(answered, Request) else None
        raise RequestError(exc.kind, exc.message, request_id) from None
    return _request_from(message)


def _request_from(message: object) -> Request | ClientAnswer:
    if not isinstance(message, dict):
        raise RequestError(
            ErrorKind.INVALID_REQUEST, "a frame must hold one JSON-RPC request object"
        )
    request_id = message.get("id")
    if request_id is not None and (
        isinstance(request_id, bool) or not isinstance(request_id, int | str)
    ):
        raise RequestError(ErrorKind.INVALID_REQUEST, "id must be a string or an integer")

    def invalid(text: str) -> RequestError:
        return RequestError(ErrorKind.INVALID_REQUEST, text, request_id)

    if message.get("jsonrpc") != "2.0":
        raise invalid('jsonrpc must be "2.0"')
    if is_answer(message):
        return parse_answer(message)
    method = message.get("method")
    if not isinstance(method, str):
        raise invalid("method must be a string")
    params = message.get("params", {})
    if not isinstance(params, dict):
        raise invalid("params must be an object")
    return Request(request_id, method, params)


# Typed parameters, one class per method


@dataclass(frozen=True, slots=True)
class Position:
    """Where a client is in a channel: an offset within an epoch ("" and "" for nowhere yet)."""

    epoch: str
    offset: str

    @property
    def key(self) -> OffsetKey | None:
        return parse_offset(self.offset) if self.offset else None


@dataclass(frozen=True, slots=True)
class ConnectParams:
    """``connect``: the connection token, if any."""

    token: str | None


@dataclass(frozen=True, slots=True)
class SubscribeParams:
    """``subscribe``: a valid channel name, and where to resume from."""

    channel: Channel
    since: Position | None
    token: str | None


@dataclass(frozen=True, slots=True)
class UnsubscribeParams:
    """``unsubscribe``: a valid channel name."""

    channel: Channel


@dataclass(frozen=True, slots=True)
class PublishParams:
    """``publish``: a valid channel name and any JSON value."""

    channel: Channel
    data: Any


@dataclass(frozen=True, slots=True)
class SubmitParams:
    """``submit``: a checked http(s) URL and, if given, a valid request id."""

    url: str
    request_id: str | None
    subscribe: bool


@dataclass(frozen=True, slots=True)
class HistoryParams:
    """``history``: a valid channel name, a position, and a limit within bounds."""

    channel: Channel
    since: Position | None
    limit: int


@dataclass(frozen=True, slots=True)
class RpcParams:
    """``rpc``: a well-formed application method, and its params (any JSON, None if left out)."""

    method: MethodName
    params: Any


@dataclass(frozen=True, slots=True)
class PingParams:
    """``ping``: no parameters at all."""

    pass


# The protocol's own methods, answered in order; ``rpc`` calls are the application's.
CallParams = (
    ConnectParams
    | SubscribeParams
    | UnsubscribeParams
    | PublishParams
    | SubmitParams
    | HistoryParams
    | PingParams
)
Params = CallParams | RpcParams


def parse_params(request: Request) -> Params:
    """Typed params for ``request``; raises PushgateError when they are wrong."""
    parser = _PARSERS.get(request.method)
    if parser is None:
        raise PushgateError(ErrorKind.UNKNOWN_METHOD, f"unknown method {request.method!r}")
    return parser(_Reader(request.params))


@dataclass
class _Reader:
    params: dict[str, Any]
    seen: set[str] = field(default_factory=set)

    def get(self, name: str, kind: type | tuple[type, ...], *, required: bool = False) -> Any:
        self.seen.add(name)
        value = self.params.get(name)
        if value is None:
            if required:
                raise invalid_params(f"{name} is required", name)
            return None
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            raise invalid_params(f"{name} has the wrong type", name)
        return value

    def channel(self) -> Channel:
        try:
            return parse_channel(self.get("channel", str, required=True))
        except ChannelNameError as exc:
            raise invalid_params(str(exc), "channel") from None

    def since(self) -> Position | None:
        raw = self.get("since", dict)
        if raw is None:
            return None
        epoch, offset = raw.get("epoch"), raw.get("offset")
        if not isinstance(epoch, str) or not isinstance(offset, str) or bool(epoch) != bool(offset):
            message = "since must be {epoch, offset}: two offsets, or both empty"
            raise invalid_params(message, "since")
        try:
            position = Position(epoch, offset)
            if epoch:
                parse_offset(epoch)
            _ = position.key
        except PushgateError as exc:
            raise invalid_params(f"since: {exc.message}", "since") from None
        return position

    def done(self) -> None:
        unknown = sorted(set(self.params) - self.seen)
        if unknown:
            raise invalid_params(f"unknown params: {', '.join(unknown)}", unknown[0])


def _connect(r: _Reader) -> ConnectParams:
    params = ConnectParams(r.get("token", str))
    r.done()
    return params


def _subscribe(r: _Reader) -> SubscribeParams:
    params = SubscribeParams(r.channel(), r.since(), r.get("token", str))
    r.done()
    return params


def _unsubscribe(r: _Reader) -> UnsubscribeParams:
    params = UnsubscribeParams(r.channel())
    r.done()
    return params


def _publish(r: _Reader) -> PublishParams:
    channel = r.channel()
    r.seen.add("data")
    if "data" not in r.params:
        raise invalid_params("data is required", "data")
    r.done()
    return PublishParams(channel, r.params["data"])


def _submit(r: _Reader) -> SubmitParams:
    raw_url, raw_id = r.get("url", str, required=True), r.get("request_id", str)
    try:
        url = validate_url(raw_url)
        request_id = None if raw_id is None else validate_request_id(raw_id)
    except PushgateError as exc:
        name = "url" if exc.kind is ErrorKind.INVALID_URL else "request_id"
        raise invalid_params(exc.message, name) from None
    params = SubmitParams(url, request_id, bool(r.get("subscribe", bool)))
    r.done()
    return params


def _history(r: _Reader) -> HistoryParams:
    channel, since = r.channel(), r.since()
    limit = r.get("limit", int)
    if limit is not None and not 1 <= limit <= MAX_HISTORY_LIMIT:
        raise invalid_params(f"limit must be 1-{MAX_HISTORY_LIMIT}", "limit")
    r.done()
    return HistoryParams(channel, since, limit or MAX_HISTORY_LIMIT)


def _rpc(r: _Reader) -> RpcParams:
    method = parse_method(r.get("method", str, required=True))
    if method is None:
        raise invalid_params("method must be <route> or <route>.<member>: identifiers", "method")
    r.seen.add("params")
    r.done()
    return RpcParams(method, r.params.get("params"))


def _ping(r: _Reader) -> PingParams:
    r.done()
    return PingParams()


_PARSERS: dict[str, Callable[[_Reader], Params]] = {
    "connect": _connect,
    "subscribe": _subscribe,
    "unsubscribe": _unsubscribe,
    "publish": _publish,
    "submit": _submit,
    "history": _history,
    "rpc": _rpc,
    "ping": _ping,
}
METHODS = frozenset(_PARSERS)  # the methods a client may call


# Encoding


def encode_result(request_id: RequestId, result: dict[str, Any]) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}, separators=_COMPACT)


def encode_error(request_id: RequestId | None, error: PushgateError) -> str:
    body: dict[str, Any] = {"code": int(error.kind.rpc_code), "message": error.message}
    if error.data is not None:
        body["data"] = error.data
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "error": body}, separators=_COMPACT)


# Per-connection rules


class Session:
    """What one connection may do next. Time comes in as ``now`` so tests control it."""

    __slots__ = (
        "_auth_required", "_burst", "_max_subscriptions", "_rate", "_refilled_at", "_tokens",
        "identity", "subscriptions",
    )  # fmt: skip

    def __init__(
        self,
        *,
        auth_required: bool,
        max_subscriptions: int,
        rate: float,
        burst: int,
        now: float,
    ) -> None:
        self.identity: Identity | None = None
        self.subscriptions: set[str] = set()
        self._auth_required = auth_required
        self._max_subscriptions = max_subscriptions
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._refilled_at = now

    @property
    def connected(self) -> bool:
        return self.identity is not None

    def admit(self, request: Request, now: float) -> None:
        """Raise PushgateError if ``request`` may not run now: rate, connect-first, connect-once."""
        self._tokens = min(self._burst, self._tokens + (now - self._refilled_at) * self._rate)
        self._refilled_at = now
        if self._tokens < 1:
            raise PushgateError(
                ErrorKind.RATE_LIMITED, f"more than {self._rate:g} calls per second"
            )
        self._tokens -= 1
        if request.method == "connect":
            if self.connected:
                raise PushgateError(ErrorKind.INVALID_REQUEST, "already connected")
        elif self._auth_required and not self.connected:
            raise PushgateError(ErrorKind.UNAUTHORIZED, "call connect with a token first")

    def connect(self, identity: Identity) -> None:
        self.identity = identity

    def check_can_subscribe(self, channel: Channel) -> None:
        if channel.full in self.subscriptions:
            raise invalid_params(f"already subscribed to {channel}", "channel")
        if len(self.subscriptions) >= self._max_subscriptions:
            raise PushgateError(
                ErrorKind.LIMIT_EXCEEDED,
                f"at most {self._max_subscriptions} subscriptions per connection",
            )
