"""What travels between pushgate and its clients: ids, URLs, offsets, frames and close codes.

Pure functions and value types only; no I/O, so all of it is unit-tested without sockets.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import struct
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from pushgate.core.errors import ErrorKind, PushgateError

MAX_URL_LENGTH = 2048
_REQUEST_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
# ASCII digits only: ``\d`` would take other scripts' digits, which int() reads and Redis does not.
_OFFSET = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
# A Redis stream id is two unsigned 64-bit numbers; nothing can follow the largest one.
_U64_MAX = 2**64 - 1
# Whitespace or control characters anywhere in a URL are a client mistake, never intended.
_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")

OffsetKey = tuple[int, int]


MAX_CLOSE_REASON_BYTES = 123  # RFC 6455: a close frame's payload is at most 125 bytes


def close_reason(text: str) -> str:
    """``text`` cut to fit a close frame, on a character boundary."""
    return text.encode()[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore")


def frame_size(message: Mapping[str, Any]) -> int:
    """Bytes of the frame in an ASGI ``websocket.receive`` message, text or binary: limits are in
    bytes, and a text frame's characters take one to four each."""
    text = message.get("text")
    return len(text.encode()) if text is not None else len(message.get("bytes") or b"")


RESUBSCRIBE_REASON = "the gateway may have missed publications; subscribe again with since"


def resubscribe_frame(channel: str) -> str:
    """The ``resubscribe`` notification of ``WS /ws`` (docs/protocol.md, "Delivery"): the
    server dropped the subscription, which resumes with ``since`` = the last publication."""
    params = {"channel": channel, "reason": RESUBSCRIBE_REASON}
    return json.dumps({"jsonrpc": "2.0", "method": "resubscribe", "params": params})


def new_request_id() -> str:
    """An unguessable id: 128 random bits, URL-safe, within the request-id alphabet."""
    return secrets.token_urlsafe(16)


def new_client_id() -> str:
    """A connection's id: in ``connect``'s answer on ``/ws``, and in every log line about it."""
    return secrets.token_urlsafe(12)


def validate_request_id(value: object) -> str:
    if not isinstance(value, str) or not _REQUEST_ID.fullmatch(value):
        raise PushgateError(
            ErrorKind.INVALID_REQUEST_ID, "request_id must be 1-128 characters of [A-Za-z0-9_.-]"
        )
    return value


def validate_url(value: object) -> str:
    """Accept an absolute http(s) URL with a host; the worker re-checks where it connects."""
    if not isinstance(value, str):
        raise PushgateError(ErrorKind.INVALID_URL, "url must be a string")
    if not value or len(value) > MAX_URL_LENGTH:
        raise PushgateError(ErrorKind.INVALID_URL, f"url must be 1-{MAX_URL_LENGTH} characters")
    if _URL_FORBIDDEN.search(value):
        raise PushgateError(
            ErrorKind.INVALID_URL, "url must not contain whitespace or control characters"
        )
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise PushgateError(ErrorKind.INVALID_URL, f"url is malformed: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PushgateError(ErrorKind.INVALID_URL, "url must be an absolute http or https URL")
    if port == 0:
        raise PushgateError(ErrorKind.INVALID_URL, "url port must be 1-65535")
    return value


def job_channel(request_id: str) -> str:
    return f"job:{request_id}"


def job_ws_path(request_id: str) -> str:
    return f"/ws/jobs/{request_id}"


def parse_offset(value: str) -> OffsetKey:
    """Parse a stream id ``<ms>-<seq>`` into a tuple that orders like the stream does.

    Both parts are unsigned 64-bit numbers, as in Redis, and the id must have a successor: every
    offset a client sends is one to read after.
    """
    match = _OFFSET.fullmatch(value)
    if match is None:
        raise PushgateError(
            ErrorKind.INVALID_OFFSET, "offset must look like <milliseconds>-<sequence>"
        )
    key = int(match[1]), int(match[2])
    if max(key) > _U64_MAX or key == (_U64_MAX, _U64_MAX):
        raise PushgateError(
            ErrorKind.INVALID_OFFSET,
            f"offset parts are unsigned 64-bit numbers, not both {_U64_MAX} (no id follows it)",
        )
    return key


# Strict JSON: what every other parser reads the same way as Python does.

MAX_JSON_DEPTH = 64
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class _NotJsonError(Exception):
    """A value Python reads but no strict JSON parser does (raised from inside the decoder)."""


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NotJsonError(f"the number {text[:32]} is beyond the range of a double")
    return value


def _constant(text: str) -> Any:
    raise _NotJsonError(f"{text} is not a JSON value")


_STRICT = json.JSONDecoder(parse_float=_finite, parse_constant=_constant)


def parse_json(raw: str | bytes, subject: str) -> Any:
    """``raw`` as JSON (RFC 8259), refusing what other parsers would read differently or not at
    all: ``MALFORMED_JSON`` for text that is not JSON (not UTF-8, a syntax error, nested deeper
    than ``MAX_JSON_DEPTH``, an integer of more digits than Python reads), ``INVALID_JSON_VALUE``
    for NaN, Infinity, numbers beyond a double's range and lone surrogates. ``subject`` names
    the text in messages ("request body", "frame").
    """
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw
        value = _STRICT.decode(text)
    except _NotJsonError as exc:
        raise PushgateError(ErrorKind.INVALID_JSON_VALUE, f"{subject}: {exc}") from None
    except RecursionError:
        raise _too_deep(subject) from None
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError and int()'s digit limit
        raise PushgateError(
            ErrorKind.MALFORMED_JSON, f"{subject} is not valid JSON: {exc}"
        ) from None
    _check_tree(value, text, subject)
    return value


def lenient_json(text: str | bytes) -> Any:
    """``text`` as Python reads JSON, for finding out what a refused document was about (the id
    of a JSON-RPC request, say); never use the values themselves."""
    return json.loads(text)


def _check_tree(value: Any, text: str, subject: str) -> None:
    # Walk the tree only when the text could hold what is looked for: most texts are small.
    deep = text.count("[") + text.count("{") > MAX_JSON_DEPTH
    surrogates = _SURROGATE_ESCAPE.search(text) is not None
    if not (deep or surrogates):
        return
    for node, depth in _nodes(value):
        if depth > MAX_JSON_DEPTH and isinstance(node, dict | list):
            raise _too_deep(subject)
        if surrogates and isinstance(node, str) and _SURROGATE.search(node):
            message = f"{subject} holds a lone surrogate, which is not a Unicode character"
            raise PushgateError(ErrorKind.INVALID_JSON_VALUE, message)


def _nodes(value: Any) -> Iterator[tuple[Any, int]]:
    """Every value and object key in ``value``, with its depth (``value`` itself is at 1)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        if isinstance(node, dict):
            stack.extend((key, depth + 1) for key in node)
            stack.extend((item, depth + 1) for item in node.values())
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)


def _too_deep(subject: str) -> PushgateError:
    return PushgateError(
        ErrorKind.MALFORMED_JSON, f"{subject} is nested deeper than {MAX_JSON_DEPTH} levels"
    )


def text_frame(payload: bytes) -> bytes:
    """An unmasked, uncompressed WebSocket text frame (RFC 6455 5.2), as servers send them.

    The same bytes go to every client of a publication, so a gateway frames it once.
    """
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


_UNDECODED: Any = object()


class Publication:
    """One event on a channel at a stream offset, encoded for clients at most once per process."""

    __slots__ = (
        "_data",
        "_job_frame",
        "_rpc_frame",
        "_rpc_wire",
        "channel",
        "epoch",
        "key",
        "offset",
        "payload",
    )

    def __init__(self, channel: str, offset: str, epoch: str, payload: str) -> None:
        self.channel = channel
        self.offset = offset
        self.epoch = epoch
        self.payload = payload  # the event as JSON text, exactly as published
        # Offsets come from Redis, never from a client: split, not validated (hot path).
        milliseconds, _, sequence = offset.partition("-")
        self.key = (int(milliseconds), int(sequence))
        self._data: Any = _UNDECODED
        self._job_frame: str | None = None
        self._rpc_frame: str | None = None
        self._rpc_wire: bytes | None = None

    @property
    def data(self) -> Any:
        if self._data is _UNDECODED:
            self._data = json.loads(self.payload)
        return self._data

    @property
    def job_frame(self) -> str:
        """The ``/ws/jobs`` text frame, built by splicing the stored JSON, never re-encoding it."""
        if self._job_frame is None:
            self._job_frame = (
                f'{{"channel":{json.dumps(self.channel)},"offset":"{self.offset}",'
                f'"data":{self.payload}}}'
            )
        return self._job_frame

    @property
    def rpc_frame(self) -> str:
        """The JSON-RPC ``publication`` notification of ``WS /ws`` (docs/protocol.md)."""
        if self._rpc_frame is None:
            self._rpc_frame = (
                f'{{"jsonrpc":"2.0","method":"publication","params":{self._params_json()}}}'
            )
        return self._rpc_frame

    @property
    def rpc_wire(self) -> bytes:
        """``rpc_frame`` as a complete WebSocket frame, ready to write to any client's socket."""
        if self._rpc_wire is None:
            self._rpc_wire = text_frame(self.rpc_frame.encode())
        return self._rpc_wire

    @property
    def sse_event(self) -> str:
        """The server-sent event of ``GET /sse``: the same params, with the offset as its id."""
        return f"id: {self.offset}\ndata: {self._params_json()}\n\n"

    def _params_json(self) -> str:
        return (
            f'{{"channel":{json.dumps(self.channel)},"offset":"{self.offset}",'
            f'"epoch":"{self.epoch}","data":{self.payload}}}'
        )

    def __repr__(self) -> str:
        return f"Publication({self.channel!r}, {self.offset!r})"
