"""A lean WebSocket protocol for uvicorn: websockets' sans-I/O ``ServerProtocol`` behind ASGI.

``pushgate gateway`` runs uvicorn with this class (``uvicorn.Config(ws=LeanWebSocketProtocol)``;
uvicorn's CLI cannot name a class of ours). It speaks ASGI as uvicorn's own sans-I/O protocol
(``websockets_sansio_impl``) does: the same scope, events, close codes, ping keepalive,
``ws_max_size``, permessage-deflate, read pausing until the app calls ``receive()``, write
backpressure, 1012 on shutdown. What differs is what an idle socket keeps: uvicorn's holds an
``asyncio.Queue`` and an ``asyncio.Event`` (each with its own deques), the handshake's request and
response, and some thirty attributes in a ``__dict__``. This one keeps a slotted object, the
``ServerProtocol`` and two small slotted helpers; a future exists only while the app waits, its
pings are timed by one timer per server (``keepalive.py``), the handshake is dropped once it is
answered.

RFC 6455 framing and handshake validation stay websockets'; this module only moves bytes between
the transport and the ``ServerProtocol`` and events between it and the app. It keeps uvicorn's
attribute names where ``gateway/delivery/direct.py`` reads them (``conn``, ``transport``,
``close_sent``, ``disconnected``, ``writable``, ``queue``, ``read_paused``, ``close_timer``).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import struct
import weakref
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import unquote

from starlette.types import ASGIApp, Message
from uvicorn.config import Config
from uvicorn.logging import TRACE_LOG_LEVEL
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import ClientDisconnected, get_local_addr, get_remote_addr, is_ssl
from uvicorn.server import ServerState
from websockets.datastructures import Headers
from websockets.exceptions import InvalidState
from websockets.extensions.base import ServerExtensionFactory
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Protocol
from websockets.server import ServerProtocol

from gateway.keepalive import Due, Keepalive
from gateway.lazysync import Flag, Inbox

log = logging.getLogger("uvicorn.error")
# websockets logs "connection open" / "connection closed" at INFO for every socket: access-log
# lines, so they go to a logger that shows them only when the access log is on.
_QUIET = logging.getLogger("gateway.wsprotocol.quiet")
_QUIET.setLevel(logging.WARNING)

CLOSE_TIMEOUT = 10.0  # uvicorn's: how long a close waits for the peer's answer
DISCONNECT = "websocket.disconnect"


class Shared:
    """What every connection of one server reads, built once per server, not per socket."""

    __slots__ = (
        "_decoded_defaults", "_raw_defaults", "_state", "access_log", "app", "asgi_version",
        "connections", "extensions", "frames_log", "keepalive", "loop", "max_size",
        "ping_interval", "ping_timeout", "root_path", "tasks",
    )  # fmt: skip

    def __init__(self, config: Config, state: ServerState, loop: asyncio.AbstractEventLoop) -> None:
        if not config.loaded:
            config.load()
        self.app = cast(ASGIApp, config.loaded_app)
        self.loop = loop
        self.root_path = config.root_path
        self.asgi_version = config.asgi_version
        self.connections = state.connections
        self.tasks = state.tasks
        self._state = state
        self._raw_defaults: list[tuple[bytes, bytes]] | None = None
        self._decoded_defaults: list[tuple[str, str]] = []
        self.access_log = bool(config.access_log)
        self.frames_log = log if self.access_log else _QUIET
        self.max_size = config.ws_max_size
        interval = config.ws_ping_interval
        self.ping_interval = interval if interval is not None and interval > 0 else None
        self.ping_timeout = config.ws_ping_timeout
        delays = [d for d in (self.ping_interval, self.ping_timeout) if d]
        self.keepalive = Keepalive(loop, min(delays)) if self.ping_interval else None
        # The factory is configuration only: one list serves every connection. uvicorn's settings.
        self.extensions: list[ServerExtensionFactory] = (
            [
                ServerPerMessageDeflateFactory(
                    server_max_window_bits=12,
                    client_max_window_bits=12,
                    compress_settings={"memLevel": 5},
                )
            ]
            if config.ws_per_message_deflate
            else []
        )

    def default_headers(self) -> list[tuple[str, str]]:
        """uvicorn's headers of every response (date, server), decoded once per new list:
        uvicorn makes one every second, with the new date."""
        raw = self._state.default_headers
        if raw is not self._raw_defaults:
            self._raw_defaults = raw
            self._decoded_defaults = [
                (name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in raw
            ]
        return self._decoded_defaults


_SHARED: weakref.WeakKeyDictionary[ServerState, Shared] = weakref.WeakKeyDictionary()


class LeanWebSocketProtocol(asyncio.Protocol):
    """One WebSocket connection under uvicorn (see the module's docstring)."""

    __slots__ = (
        "_bucket", "_fragments", "_path", "_pinged", "_rejection", "_response", "_shared",
        "_state", "_text", "close_sent", "close_timer", "conn", "disconnected",
        "handshake_complete", "queue", "read_paused", "transport", "writable",
    )  # fmt: skip

    close_timeout = CLOSE_TIMEOUT  # read by direct.py's close_now

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        shared = _SHARED.get(server_state)
        if shared is None:
            shared = Shared(config, server_state, _loop or asyncio.get_event_loop())
            _SHARED[server_state] = shared
        self._shared = shared
        self.conn = ServerProtocol(
            extensions=shared.extensions, max_size=shared.max_size, logger=shared.frames_log
        )
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        # Until the app answers the handshake: websockets' answers the 101 is built from
        # (Sec-WebSocket-Accept, -Extensions, -Protocol), the path (for the access log) and the
        # state the scope copies. All dropped then.
        self._response: tuple[str, str | None, str | None] | None = None
        self._path = ""
        self._state = app_state
        self._rejection: tuple[int, list[tuple[str, str]], bytes] | None = None
        self.queue = Inbox()
        self.writable = Flag(is_set=True)
        self.handshake_complete = False
        self.close_sent = False
        self.disconnected = False
        self.read_paused = False
        self.close_timer: asyncio.TimerHandle | None = None
        self._bucket: set[Due] | None = None  # where Keepalive holds its next ping or deadline
        self._pinged: bytes | None = None  # the payload of the ping awaiting its pong
        self._fragments: list[bytes] | None = None  # a fragmented message's frames so far
        self._text = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._shared.loop

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._shared.connections.add(self)  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_keepalive()
        if self.handshake_complete and self._rejection is None:
            self.queue.put_nowait({"type": DISCONNECT, "code": 1005})
        else:
            self.queue.put_nowait({"type": DISCONNECT, "code": 1006})
        self._shared.connections.discard(self)
        self.handshake_complete = True
        self.disconnected = True
        # A send waiting for the buffer to drain would wait forever: asyncio never resumes
        # writing on a lost transport.
        self.writable.set()
        if self.close_timer is not None:
            self.close_timer.cancel()
            self.close_timer = None
        if exc is None:
            self.transport.close()

    def eof_received(self) -> None:
        pass

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.receive_data(data)
        if conn.handshake_exc is not None and not self.handshake_complete:
            self._reject_unparsable()
            return
        for event in conn.events_received():
            if isinstance(event, Request):
                self._handshake(event)
            elif isinstance(event, Frame):
                self._frame(event)
        if conn.close_sent is not None and not self.close_sent:
            self._failed()  # websockets failed the connection (too big, bad frame, bad UTF-8)
        elif not self.transport.is_closing():
            self._flush()  # pongs websockets queued

    def shutdown(self) -> None:
        """uvicorn's shutdown: close with 1012 (service restart), or 500 before the handshake."""
        self._stop_keepalive()
        if self.close_sent:
            if self.close_timer is not None:
                self.close_timer.cancel()
                self.close_timer = None
        elif self.handshake_complete and self._rejection is None:
            self.queue.put_nowait({"type": DISCONNECT, "code": 1012})
            self.conn.send_close(1012)
            self.close_sent = True
            self._flush()
        else:
            self._send_500()
        self.transport.close()

    # The handshake

    def _reject_unparsable(self) -> None:
        # websockets could not parse the request: it queued a 414/431 for a limit, else nothing.
        self.handshake_complete = True
        self.close_sent = True
        output = b"".join(self.conn.data_to_send())
        if not output:
            text = "Failed to open a WebSocket connection: invalid request.\n"
            output = self.conn.reject(400, text).serialize()
        self.transport.write(output)
        self.transport.close()

    def upgrade(self, http: dict[str, Any], target: bytes) -> None:
        """The handshake request as uvicorn's HTTP protocol parsed it (``LeanHttpProtocol``;
        ``http`` is its scope, ``target`` the request's): websockets validates it
        (``process_request``) without parsing it a second time from the bytes uvicorn would
        write back out (a tenth of a connection's CPU), and the scope takes what uvicorn's
        already holds. A request that websockets' parser itself refuses (a body) takes that
        route, to be refused there."""
        method = http["method"].encode()
        headers: list[tuple[bytes, bytes]] = http["headers"]  # uvicorn's list, names in lower case
        if any(name in _BODY_HEADERS for name, _ in headers):
            self.data_received(_request_bytes(method, target, headers))
            return
        request_headers = Headers()
        for name, value in headers:
            request_headers[name.decode("ascii")] = value.decode("latin-1")
        request = Request(target.decode("ascii"), request_headers, method=method.decode("ascii"))
        conn = self.conn
        # Past the request: the parser reads frames from here on. It waited for the request's
        # first line; ServerProtocol.parse reads frames with its base class's parse after it.
        conn.parser.close()
        conn.parser = Protocol.parse(conn)
        next(conn.parser)
        self._handshake(request, http)

    def _handshake(self, request: Request, http: dict[str, Any] | None = None) -> None:
        conn = self.conn
        try:
            # websockets' validation and negotiation: what ``accept`` does before it builds a
            # 101 with a Date of its own, formatted per connection (``_accept`` builds it).
            self._response = conn.process_request(request)
        except Exception:  # websockets' own answer to what failed: its 4xx, no app
            self.handshake_complete = True
            self.close_sent = True
            conn.send_response(conn.accept(request))
            self._flush()
            self.transport.close()
            return
        self._path = request.path
        scope = self._scope(request, http)
        # The scope has its own copy of the headers; websockets' parser keeps the request (a
        # local of its generator) for the life of the connection, so empty it.
        request.headers.clear()
        self.queue.put_nowait({"type": "websocket.connect"})
        task = self.loop.create_task(self._run_asgi(scope))
        tasks = self._shared.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def _scope(self, request: Request, http: dict[str, Any] | None) -> dict[str, Any]:
        """The ASGI scope: its request part from uvicorn's HTTP scope when given (``http``),
        else from websockets' parsed request."""
        state, self._state = self._state, {}
        subprotocols = [
            token.strip()
            for header in request.headers.get_all("Sec-WebSocket-Protocol")
            for token in header.split(",")
        ]
        return {
            "type": "websocket",
            "asgi": {"version": self._shared.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            **self._request_part(request, http),
            "subprotocols": subprotocols,
            "state": state.copy(),
            "extensions": {"websocket.http.response": {}},
        }

    def _request_part(self, request: Request, http: dict[str, Any] | None) -> dict[str, Any]:
        root = self._shared.root_path
        raw_path, _, query = request.path.partition("?")
        return {
            **(self._connection_part(request) if http is None else _connection_part(http)),
            "root_path": root,
            "path": root + unquote(raw_path),
            "raw_path": root.encode("ascii") + raw_path.encode("ascii"),
            "query_string": query.encode("ascii"),
        }

    def _connection_part(self, request: Request) -> dict[str, Any]:
        transport = self.transport
        return {
            "scheme": "wss" if is_ssl(transport) else "ws",
            "server": get_local_addr(transport),
            "client": get_remote_addr(transport),
            # websockets (>= 17) decodes header values as ISO-8859-1.
            "headers": [
                (name.encode("ascii"), value.encode("latin-1"))
                for name, value in request.headers.raw_items()
            ],
        }

    async def _run_asgi(self, scope: dict[str, Any]) -> None:
        try:
            await self._shared.app(scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            log.exception("Exception in ASGI application\n")
            self._send_500()
        else:
            if not self.handshake_complete:
                log.error("ASGI callable returned without completing handshake.")
                self._send_500()
        if self.close_timer is None:
            self.transport.close()

    def _send_500(self) -> None:
        if self.handshake_complete:
            return
        self.handshake_complete = True
        self.close_sent = True
        self._response = None
        self.conn.send_response(self.conn.reject(500, "Internal Server Error"))
        self._flush()

    # Frames from the client

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            self._text = opcode is Opcode.TEXT
            if frame.fin:
                self._message(bytes(frame.data))
            else:
                self._fragments = [bytes(frame.data)]
        elif opcode is Opcode.CONT:
            fragments = self._fragments
            assert fragments is not None  # websockets rejects a CONT without a start
            fragments.append(bytes(frame.data))
            if frame.fin:
                self._fragments = None
                self._message(b"".join(fragments))
        elif opcode is Opcode.PONG:
            self._pong(bytes(frame.data))
        elif opcode is Opcode.CLOSE:
            self._close_received()
        # PING: websockets queued the pong, flushed after the events.

    def _message(self, data: bytes) -> None:
        if self.close_sent:
            return  # past our close: read on only to see the peer's answer
        message: Message
        if self._text:
            try:
                message = {"type": "websocket.receive", "text": data.decode()}
            except UnicodeDecodeError:
                self.conn.fail(1007, "invalid UTF-8")
                return  # _failed() runs once the events are done
        else:
            message = {"type": "websocket.receive", "bytes": data}
        # Read on while the app keeps up; else stop reading until it takes what it has.
        if not self.queue.put_nowait(message) and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def _close_received(self) -> None:
        if self.close_sent:  # the peer answered our close: the closing handshake is complete
            if self.close_timer is not None:
                self.close_timer.cancel()
                self.close_timer = None
            self.transport.close()
            return
        close = self.conn.close_rcvd
        assert close is not None
        self.queue.put_nowait({"type": DISCONNECT, "code": close.code, "reason": close.reason})
        self.close_sent = True  # websockets queued the echo
        self._flush()
        self.transport.close()

    def _failed(self) -> None:
        """websockets failed the connection and queued its close frame: tell the app, send it,
        and read on (websockets discards what comes) until the peer closes or CLOSE_TIMEOUT.
        Closing with unread bytes would reset the connection, and a peer still sending (an
        oversized message) could lose the close frame and its code with it."""
        close = self.conn.close_sent
        assert close is not None
        self.queue.put_nowait({"type": DISCONNECT, "code": close.code, "reason": close.reason})
        self.close_sent = True
        self._flush()
        self._await_peer_close()

    # Keepalive: the next ping, or the deadline of its pong, held by the server's Keepalive.

    def _start_keepalive(self) -> None:
        self._wait(self._shared.ping_interval)

    def _wait(self, delay: float | None) -> None:
        keepalive = self._shared.keepalive
        if keepalive is not None and delay is not None:
            self._bucket = keepalive.schedule(self, delay)

    def _stop_keepalive(self) -> None:
        if self._bucket is not None:
            self._bucket.discard(self)
            self._bucket = None
        self._pinged = None

    def keepalive_due(self) -> None:
        self._bucket = None
        if self._pinged is not None and self._shared.ping_timeout is not None:
            self._ping_timed_out()
        else:
            self._ping()

    def _ping(self) -> None:
        if self.close_sent or self.transport.is_closing():
            return
        # A fresh payload each time, so that a late pong of an earlier ping does not count.
        self._pinged = struct.pack("!d", self.loop.time())
        self.conn.send_ping(self._pinged)
        self._flush()
        timeout = self._shared.ping_timeout
        self._wait(timeout if timeout is not None else self._shared.ping_interval)

    def _pong(self, payload: bytes) -> None:
        if self._pinged is None or payload != self._pinged:
            return
        self._pinged = None
        if self._shared.ping_timeout is not None:  # else the next ping is already due
            self._stop_keepalive()
            self._start_keepalive()

    def _ping_timed_out(self) -> None:
        self._pinged = None
        if self.close_sent or self.transport.is_closing():
            return
        self.queue.put_nowait({"type": DISCONNECT, "code": 1011, "reason": "ping timeout"})
        self.conn.fail(1011, "keepalive ping timeout")
        self.close_sent = True
        self._flush()
        self.transport.close()

    # ASGI

    async def receive(self) -> Message:
        queue = self.queue
        while queue.empty():
            await queue.waiter()
        message = queue.pop()
        if self.read_paused and self.queue.empty():
            self.read_paused = False
            self.transport.resume_reading()
        return message

    async def send(self, message: Message) -> None:
        if not self.writable.is_set():
            await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        if not self.handshake_complete:
            self._send_handshake(message)
        elif self._rejection is not None:
            self._send_rejection_body(message)
        elif not self.close_sent:
            try:
                self._send_frame(message)
            except InvalidState:
                raise ClientDisconnected() from None
        else:
            raise RuntimeError(f"Unexpected ASGI message '{message['type']}' after the close.")

    def _send_handshake(self, message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            self._accept(message)
        elif kind == "websocket.close":  # refused before accepting: HTTP 403
            self._access("403")
            self.queue.put_nowait({"type": DISCONNECT, "code": 1006})
            self._response = None
            self.handshake_complete = True
            self.close_sent = True
            self.conn.send_response(self.conn.reject(HTTPStatus.FORBIDDEN, ""))
            self._flush()
            self.transport.close()
        elif kind == "websocket.http.response.start":
            status = message["status"]
            if not 100 <= status < 600:
                raise RuntimeError(f"Invalid HTTP status code '{status}' in response.")
            self._access(str(status))
            headers = _decoded(message.get("headers", []))
            self._response = None
            self._rejection = (status, headers, b"")
            self.handshake_complete = True
        else:
            raise RuntimeError(
                "Expected ASGI message 'websocket.accept', 'websocket.close' or "
                f"'websocket.http.response.start' but got '{kind}'."
            )

    def _accept(self, message: Message) -> None:
        answers = self._response
        assert answers is not None
        self._response = None  # the 101 is written once; nothing of the handshake is kept
        self._access("[accepted]")
        key, extensions, subprotocol = answers
        headers = [("Upgrade", "websocket"), ("Connection", "Upgrade")]
        headers.append(("Sec-WebSocket-Accept", key))
        if extensions is not None:
            headers.append(("Sec-WebSocket-Extensions", extensions))
        headers += self._shared.default_headers()
        headers += [(name.lower(), value) for name, value in _decoded(message.get("headers", []))]
        subprotocol = message.get("subprotocol") or subprotocol
        if subprotocol:
            headers.append(("Sec-WebSocket-Protocol", subprotocol))
        if not self.transport.is_closing():
            self.handshake_complete = True
            self.conn.send_response(Response(101, "Switching Protocols", Headers(headers)))
            self._flush()
            self._start_keepalive()

    def _send_rejection_body(self, message: Message) -> None:
        if message["type"] != "websocket.http.response.body":
            raise RuntimeError(
                f"Expected ASGI message 'websocket.http.response.body' but got '{message['type']}'."
            )
        assert self._rejection is not None
        status, headers, body = self._rejection
        body += message.get("body", b"")
        self._rejection = (status, headers, body)
        if message.get("more_body", False):
            return
        response_headers = Headers(headers)
        response_headers.setdefault("Date", email.utils.formatdate(usegmt=True))
        response_headers.setdefault("Connection", "close")
        response_headers.setdefault("Content-Length", str(len(body)))
        response_headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        phrase = _phrase(status)
        self.queue.put_nowait({"type": DISCONNECT, "code": 1006})
        self.close_sent = True
        self.conn.send_response(Response(status, phrase, response_headers, body))
        self._flush()
        self.transport.close()

    def _send_frame(self, message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.send":
            data = message.get("bytes")
            if data is not None:
                self.conn.send_binary(data)
            else:
                self.conn.send_text(message["text"].encode())
            self._flush()
        elif kind == "websocket.close":
            if self.transport.is_closing():
                return
            code = message.get("code", 1000)
            reason = message.get("reason") or ""
            self.queue.put_nowait({"type": DISCONNECT, "code": code, "reason": reason})
            self.conn.send_close(code, reason)
            self._flush()
            self.close_sent = True
            self._await_peer_close()
        else:
            raise RuntimeError(
                f"Expected ASGI message 'websocket.send' or 'websocket.close', but got '{kind}'."
            )

    def _await_peer_close(self) -> None:
        if self.read_paused:  # read on, to see the peer's answer
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(CLOSE_TIMEOUT, self.transport.close)

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.transport.write(data[0] if len(data) == 1 else b"".join(data))

    def _access(self, outcome: str) -> None:
        if self._shared.access_log:
            log.info('%s - "WebSocket %s" %s', _peer(self.transport), self._path, outcome)
        self._path = ""


class LeanHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools HTTP/1.1 protocol, handing a WebSocket upgrade to the lean protocol
    as the request it parsed (``LeanWebSocketProtocol.upgrade``) instead of as bytes."""

    def handle_websocket_upgrade(self) -> None:
        if self.ws_protocol_class is not LeanWebSocketProtocol:
            super().handle_websocket_upgrade()
            return
        if self.logger.level <= TRACE_LOG_LEVEL:  # as uvicorn's own upgrade logs it
            prefix = f"{self.client[0]}:{self.client[1]} - " if self.client else ""
            self.logger.log(TRACE_LOG_LEVEL, "%sUpgrading to WebSocket", prefix)
        self.connections.discard(self)
        protocol = LeanWebSocketProtocol(
            config=self.config, server_state=self.server_state, app_state=self.app_state
        )
        protocol.connection_made(self.transport)
        self.transport.set_protocol(protocol)
        protocol.upgrade(cast(dict[str, Any], self.scope), self.url)


def _connection_part(http: dict[str, Any]) -> dict[str, Any]:
    """What uvicorn's HTTP scope of the upgrade request already holds of a WebSocket scope."""
    return {
        "scheme": "wss" if http["scheme"] == "https" else "ws",
        "server": http["server"],
        "client": http["client"],
        "headers": http["headers"],
    }


# What websockets' request parser refuses (a request with a body) and uvicorn's does not.
_BODY_HEADERS = frozenset((b"transfer-encoding", b"content-length"))


def _request_bytes(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    lines = [method + b" " + target + b" HTTP/1.1"]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _decoded(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _peer(transport: asyncio.Transport) -> str:
    client = get_remote_addr(transport)
    return f"{client[0]}:{client[1]}" if client else "-"
