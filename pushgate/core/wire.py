"""What travels between pushgate and its clients: ids, URLs, offsets, frames and close codes.

Pure functions and value types only; no I/O, so all of it is unit-tested without sockets.
"""

from __future__ import annotations

import json
import re
import secrets
import struct
from typing import Any
from urllib.parse import urlsplit

from pushgate.core.errors import ErrorKind, PushgateError

MAX_URL_LENGTH = 2048
_REQUEST_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_OFFSET = re.compile(r"(\d{1,20})-(\d{1,20})")
# Whitespace or control characters anywhere in a URL are a client mistake, never intended.
_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")

OffsetKey = tuple[int, int]


MAX_CLOSE_REASON_BYTES = 123  # RFC 6455: a close frame's payload is at most 125 bytes


def close_reason(text: str) -> str:
    """``text`` cut to fit a close frame, on a character boundary."""
    return text.encode()[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore")


RESUBSCRIBE_REASON = "the gateway may have missed publications; subscribe again with since"


def resubscribe_frame(channel: str) -> str:
    """The ``resubscribe`` notification of ``WS /ws`` (docs/protocol.md, "Delivery"): the
    server dropped the subscription, which resumes with ``since`` = the last publication."""
    params = {"channel": channel, "reason": RESUBSCRIBE_REASON}
    return json.dumps({"jsonrpc": "2.0", "method": "resubscribe", "params": params})


def new_request_id() -> str:
    """An unguessable id: 128 random bits, URL-safe, within the request-id alphabet."""
    return secrets.token_urlsafe(16)


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
    """Parse a stream id ``<ms>-<seq>`` into a tuple that orders like the stream does."""
    match = _OFFSET.fullmatch(value)
    if match is None:
        raise PushgateError(
            ErrorKind.INVALID_OFFSET, "offset must look like <milliseconds>-<sequence>"
        )
    return int(match[1]), int(match[2])


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
