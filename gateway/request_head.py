"""Bounds on a request's head, enforced before the app sees the request: uvicorn has none.

uvicorn waits for a request's head for ever (a client sending a header line now and then keeps
its connection, and its memory, as long as it likes), takes a head of any size, and answers
malformed HTTP with a plain-text 400. ``install`` extends both of uvicorn's HTTP/1.1 protocol
classes (httptools and h11) in this process, so that this holds however the server was started
(``uvicorn gateway.app:app``, ``--factory``, ``pushgate dev``, the image):

- a request's head must be complete ``timeout`` seconds after the connection opened, or after
  the previous response was sent; else the answer is 408 ``request_timeout`` and the connection
  closes (a connection that sends nothing at all is closed the same way);
- a head over ``MAX_HEAD_BYTES`` is answered 431 ``headers_too_large``, and the connection closed
  (counted while the head is incomplete: the read that completes it may take it one read over);
- malformed HTTP gets 400 ``bad_request`` with the JSON body of every other error.

A connection upgraded to a WebSocket is not watched any more.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from pushgate.core.errors import ErrorKind

MAX_HEAD_BYTES = 64 * 1024
_WATCH = "_pushgate_head_watch"  # an instance's _Watch
_EXTENDED = "_pushgate_head_bounds"  # a class already extended


@dataclass(slots=True)
class _Watch:
    """One wait for a head: ``cycle`` is the protocol's request cycle when it began, so a new
    cycle means the head has arrived; ``begun`` says that its first byte has (httptools)."""

    timer: asyncio.TimerHandle
    cycle: Any
    begun: bool = False
    size: int = 0


@dataclass(slots=True)
class _Bound:
    timeout: float = 10.0


_bound = _Bound()


def install(timeout: float) -> None:
    """Bound every request head of this process's uvicorn servers to ``timeout`` seconds."""
    _bound.timeout = timeout
    for protocol in _protocol_classes():
        if not getattr(protocol, _EXTENDED, False):
            _extend(protocol)
            setattr(protocol, _EXTENDED, True)


def _protocol_classes() -> list[type[Any]]:
    classes: list[type[Any]] = [H11Protocol]
    try:  # httptools is optional for uvicorn, though `uvicorn[standard]` brings it
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - the project depends on uvicorn[standard]
        return classes
    return [*classes, HttpToolsProtocol]


def _extend(cls: type[Any]) -> None:
    connection_made: Callable[[Any, Any], None] = cls.connection_made
    data_received: Callable[[Any, bytes], None] = cls.data_received
    on_response_complete: Callable[[Any], None] = cls.on_response_complete
    connection_lost: Callable[[Any, Exception | None], None] = cls.connection_lost

    def watched_connection_made(self: Any, transport: Any) -> None:
        connection_made(self, transport)
        _watch(self)

    def watched_data_received(self: Any, data: bytes) -> None:
        watch: _Watch | None = self.__dict__.get(_WATCH)
        counted = len(data) if watch is not None and _in_head(self, watch) else 0
        data_received(self, data)
        _received(self, counted)
        if self.transport.get_protocol() is not self:
            _release(self)

    def watched_on_response_complete(self: Any) -> None:
        on_response_complete(self)
        if not self.transport.is_closing():
            _watch(self)

    def watched_connection_lost(self: Any, exc: Exception | None) -> None:
        _unwatch(self)
        connection_lost(self, exc)

    def json_400_response(self: Any, msg: str) -> None:
        _refuse(self, ErrorKind.BAD_REQUEST, msg)

    cls.connection_made = watched_connection_made
    cls.data_received = watched_data_received
    cls.on_response_complete = watched_on_response_complete
    cls.connection_lost = watched_connection_lost
    cls.send_400_response = json_400_response
    if hasattr(cls, "on_message_begin"):  # httptools' parser calls it on a request's first byte
        on_message_begin: Callable[[Any], None] = cls.on_message_begin

        def watched_on_message_begin(self: Any) -> None:
            on_message_begin(self)
            watch: _Watch | None = self.__dict__.get(_WATCH)
            if watch is not None:
                watch.begun = True

        cls.on_message_begin = watched_on_message_begin


def _in_head(protocol: Any, watch: _Watch) -> bool:
    """Whether the next read holds a head's bytes only, not the rest of an earlier body that the
    app did not read (uvicorn drops those): h11 knows the client's state; with httptools the
    head has begun before this read (the read that begins it may end an earlier body too)."""
    conn = getattr(protocol, "conn", None)
    if isinstance(conn, h11.Connection):
        return conn.their_state is h11.IDLE
    return watch.begun


def _watch(protocol: Any) -> None:
    _unwatch(protocol)
    timer = asyncio.get_running_loop().call_later(_bound.timeout, _expired, protocol)
    protocol.__dict__[_WATCH] = _Watch(timer, protocol.cycle)


def _release(protocol: Any) -> None:
    """The socket is a WebSocket's now: nothing calls this protocol again. httptools' parser
    holds its bound callbacks (a cycle), so without this every upgraded connection left some 20
    objects, the protocol and its parser among them, for the cyclic GC to find."""
    if hasattr(protocol, "parser"):  # httptools; h11's Connection holds no callbacks
        protocol.parser = None


def _unwatch(protocol: Any) -> None:
    watch: _Watch | None = protocol.__dict__.pop(_WATCH, None)
    if watch is not None:
        watch.timer.cancel()


def _waiting(protocol: Any, watch: _Watch) -> bool:
    """Whether the connection is still ours, and between requests: no new head has arrived,
    and the last request (if any) has had its answer."""
    transport = protocol.transport
    if transport.is_closing() or transport.get_protocol() is not protocol:
        return False
    cycle = protocol.cycle
    return cycle is watch.cycle and (cycle is None or cycle.response_complete)


def _received(protocol: Any, counted: int) -> None:
    watch: _Watch | None = protocol.__dict__.get(_WATCH)
    if watch is None:
        return
    if not _waiting(protocol, watch):
        _unwatch(protocol)  # the head arrived, or the socket is a WebSocket's now, or closing
        return
    watch.size += counted
    if watch.size > MAX_HEAD_BYTES:
        _unwatch(protocol)
        message = f"the request head is over {MAX_HEAD_BYTES} bytes"
        _refuse(protocol, ErrorKind.HEADERS_TOO_LARGE, message)


def _expired(protocol: Any) -> None:
    watch: _Watch | None = protocol.__dict__.pop(_WATCH, None)
    if watch is not None and _waiting(protocol, watch):
        message = f"the request head did not arrive within {_bound.timeout:g} s"
        _refuse(protocol, ErrorKind.REQUEST_TIMEOUT, message)


def _refuse(protocol: Any, kind: ErrorKind, message: str) -> None:
    """Answer with ``kind``'s status and JSON error body, then close the connection."""
    body = json.dumps({"error": {"code": kind.code, "message": message}}).encode()
    status = HTTPStatus(kind.http_status)
    head = [f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode()]
    defaults = protocol.server_state.default_headers  # date, server
    head += [name + b": " + value + b"\r\n" for name, value in defaults]
    head += [
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n\r\n",
    ]
    protocol.transport.write(b"".join(head) + body)
    protocol.transport.close()
