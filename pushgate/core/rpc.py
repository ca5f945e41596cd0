"""The application's own calls over ``WS /ws`` as pure code: names, errors, and the calls the
server makes to a client (docs/protocol.md, "Application calls").

A client calls ``rpc {"method": "route.member", "params": any}``; the gateway answers with the
handler's result or one of three errors of its own (``RPC_UNKNOWN_METHOD``, ``RPC_ERROR`` with
``data: {"type", "message"}``, ``RPC_TIMEOUT``). The server calls a client with a JSON-RPC
request whose id is a string ``"s<n>"`` (a namespace of its own, so it never meets the client's
ids), and the client answers with a JSON-RPC response.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pushgate.core.errors import ErrorKind, PushgateError, RpcCode

# A route name, then optionally ".member": identifiers, so a name never needs escaping anywhere.
METHOD_PATTERN = re.compile(r"([A-Za-z][A-Za-z0-9_]{0,63})(?:\.([A-Za-z_][A-Za-z0-9_]{0,63}))?")
ROUTE_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
SERVER_CALL_PREFIX = "s"
# What a client's error answer may carry into the gateway's log: enough for a stack trace.
MAX_CLIENT_MESSAGE = 1000
MAX_CLIENT_STACK = 8000
_COMPACT = (",", ":")


@dataclass(frozen=True, slots=True)
class MethodName:
    """A well-formed ``rpc`` method: a route and, for a class route, one of its members."""

    route: str
    member: str | None

    @property
    def full(self) -> str:
        return self.route if self.member is None else f"{self.route}.{self.member}"

    @property
    def private(self) -> bool:
        """Members named ``_...`` are never reachable from a client."""
        return self.member is not None and self.member.startswith("_")


def parse_method(value: str) -> MethodName | None:
    """The method ``value`` names, or None when it is not of the form ``route[.member]``."""
    match = METHOD_PATTERN.fullmatch(value)
    if match is None:
        return None
    return MethodName(match[1], match[2])


# Errors of the application's calls


def unknown_method(method: str) -> PushgateError:
    return PushgateError(ErrorKind.RPC_UNKNOWN_METHOD, f"unknown rpc method {method!r}")


def handler_error(kind: str, message: str) -> PushgateError:
    """A handler raised: its type and message travel to the caller (never its traceback)."""
    text = f"{kind}: {message}" if message else kind
    return PushgateError(ErrorKind.RPC_ERROR, text, {"type": kind, "message": message})


def error_of(exc: BaseException) -> PushgateError:
    """``handler_error`` for a Python exception."""
    return handler_error(type(exc).__name__, str(exc))


def timed_out(method: str, seconds: float) -> PushgateError:
    message = f"rpc {method!r} did not finish within {seconds:g} s"
    return PushgateError(ErrorKind.RPC_TIMEOUT, message)


# Calls from the server to a client


def server_call_id(number: int) -> str:
    return f"{SERVER_CALL_PREFIX}{number}"


def encode_server_call(call_id: str, method: str, params: Any) -> str:
    """The request the server sends a client; raises TypeError when ``params`` is not JSON."""
    message = {"jsonrpc": "2.0", "id": call_id, "method": method, "params": params}
    return json.dumps(message, separators=_COMPACT)


@dataclass(frozen=True, slots=True)
class ClientFailure:
    """A client's error answer: its code, message, and the type and stack of what it threw."""

    code: int
    message: str
    type: str
    stack: str


@dataclass(frozen=True, slots=True)
class ClientAnswer:
    """A client's JSON-RPC response to a call the server made; ``error`` None: it succeeded."""

    id: object
    result: Any
    error: ClientFailure | None


def is_answer(message: dict[str, Any]) -> bool:
    """Whether a decoded frame is a response (to a server call), not a request."""
    return "method" not in message and ("result" in message or "error" in message)


def parse_answer(message: dict[str, Any]) -> ClientAnswer:
    """A response frame as an answer; a malformed error still fails the call it answers."""
    if "error" not in message:
        return ClientAnswer(message.get("id"), message.get("result"), None)
    error = message["error"] if isinstance(message["error"], dict) else {}
    code = error.get("code")
    data = error["data"] if isinstance(error.get("data"), dict) else {}
    failure = ClientFailure(
        code=code if isinstance(code, int) and not isinstance(code, bool) else RpcCode.RPC_ERROR,
        message=_text(error.get("message"), MAX_CLIENT_MESSAGE) or "the client answered an error",
        type=_text(data.get("type"), 100) or "Error",
        stack=_text(data.get("stack"), MAX_CLIENT_STACK),
    )
    return ClientAnswer(message.get("id"), None, failure)


def _text(value: object, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""
