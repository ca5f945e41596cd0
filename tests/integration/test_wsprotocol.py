"""The lean WebSocket protocol (gateway/wsprotocol.py) on real sockets, beside uvicorn's own.

Each test runs a real uvicorn server in a thread of its own, with a small ASGI app, and talks to
it with raw frames or websockets' client. The behaviour checked is uvicorn's, so most tests run
against both protocols: the lean one must not differ where an app or a client can see it.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import gc
import json
import socket
import struct
import threading
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from starlette.types import Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from gateway.app import create_app
from gateway.delivery.connections import Connections
from gateway.wsprotocol import LeanHttpProtocol, LeanWebSocketProtocol
from pushgate.cli.processes import free_port
from pushgate.cli.redis_server import RedisServer
from pushgate.core.settings import Settings
from tests.conftest import redis_db
from tests.raw import RawWebSocket, exchange, read_response, request, ws_connect, ws_frame
from tests.raw import connect as raw_connect

# uvicorn options per protocol: the lean one as `pushgate gateway` runs it (handed the upgrade
# request as uvicorn parsed it), as `uvicorn.Config(ws=LeanWebSocketProtocol)` alone runs it
# (handed the request's bytes), and uvicorn's own.
PROTOCOLS: dict[str, dict[str, Any]] = {
    "lean": {"ws": LeanWebSocketProtocol, "http": LeanHttpProtocol},
    "lean-bytes": {"ws": LeanWebSocketProtocol},
    "websockets-sansio": {"ws": "websockets-sansio"},
}
MAX_SIZE = 1024
START_TIMEOUT = 10.0
FLOOD_FRAMES = 1_000  # bound: 64 KB each, far past the socket buffers (a few MB)


@dataclass
class Seen:
    """What the app saw, written from the server's thread."""

    disconnects: list[Message] = field(default_factory=list)
    paused: threading.Event = field(default_factory=threading.Event)
    resumed: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    scopes: list[dict[str, Any]] = field(default_factory=list)


def make_app(seen: Seen) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "websocket"
        assert (await receive())["type"] == "websocket.connect"
        seen.scopes.append(dict(scope))
        path = scope["path"]
        if path == "/refuse":  # a close before accepting
            await send({"type": "websocket.close", "code": 1000})
        elif path == "/teapot":  # an HTTP response instead of the handshake
            headers = [(b"content-type", b"text/plain"), (b"x-why", b"tea")]
            start = "websocket.http.response.start"
            await send({"type": start, "status": 418, "headers": headers})
            body = "websocket.http.response.body"
            await send({"type": body, "body": b"short ", "more_body": True})
            await send({"type": body, "body": b"and stout"})
        elif path == "/crash":
            raise RuntimeError("before the handshake")
        else:
            chosen = "pg.v1" if "pg.v1" in scope["subprotocols"] else None
            await send({"type": "websocket.accept", "subprotocol": chosen, "headers": []})
            await _serve(path, receive, send, seen)
        seen.done.set()

    return app


async def _serve(path: str, receive: Receive, send: Send, seen: Seen) -> None:
    if path == "/close":  # the server closes after the first message
        await receive()
        await send({"type": "websocket.close", "code": 4001, "reason": "bye"})
        seen.disconnects.append(await receive())
        return
    if path == "/flood":  # the server writes until the client's buffers are full
        reader = asyncio.get_running_loop().create_task(_read_all(receive, seen))
        await _flood(send, seen)
        await reader
        return
    while True:  # echo
        message = await receive()
        if message["type"] == "websocket.disconnect":
            seen.disconnects.append(message)
            return
        reply = {k: v for k, v in message.items() if k in ("text", "bytes")}
        await send({"type": "websocket.send", **reply})


async def _read_all(receive: Receive, seen: Seen) -> None:
    while (message := await receive())["type"] != "websocket.disconnect":
        pass
    seen.disconnects.append(message)


async def _flood(send: Send, seen: Seen) -> None:
    protocol = send.__self__  # type: ignore[attr-defined]
    chunk = "x" * 65536
    for _ in range(FLOOD_FRAMES):
        if not protocol.writable.is_set():  # the transport paused writing: the client is full
            seen.paused.set()
            await send({"type": "websocket.send", "text": "last"})  # waits for the client
            seen.resumed.set()
            return
        await send({"type": "websocket.send", "text": chunk})


@contextmanager
def serve(ws: str, app: Any = None, **options: Any) -> Iterator[tuple[int, Seen, uvicorn.Server]]:
    """A uvicorn server in a thread with ``ws`` (a name of PROTOCOLS) as its WebSocket protocol
    (and ``make_app``'s app unless ``app`` is given)."""
    seen = Seen()
    port = free_port()
    config = uvicorn.Config(
        app or make_app(seen),
        host="127.0.0.1",
        port=port,
        **PROTOCOLS[ws],
        ws_max_size=MAX_SIZE * 1024,
        log_level="critical",
        **{"lifespan": "off", **options},
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(int(START_TIMEOUT / 0.02)):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.02)
        assert server.started, "uvicorn did not start"
        yield port, seen, server
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT)


@pytest.fixture(params=list(PROTOCOLS))
def ws(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_echo_with_subprotocol_and_fragments(ws: str) -> None:
    with (
        serve(ws) as (port, _seen, _),
        connect(
            f"ws://127.0.0.1:{port}/echo?x=1",
            subprotocols=["pg.v1"],  # type: ignore[list-item]
        ) as client,
    ):
        assert client.subprotocol == "pg.v1"
        client.send("héllo")
        assert client.recv() == "héllo"
        client.send(b"\x00\xff")
        assert client.recv() == b"\x00\xff"
        client.send(["frag", "ment", "ed"])  # one message in three frames
        assert client.recv() == "fragmented"


@pytest.mark.parametrize(
    ("headers", "status", "says"),
    [
        ([(b"Sec-WebSocket-Version", b"13")], 400, b"Sec-WebSocket-Key"),
        ([(b"Sec-WebSocket-Key", b"short"), (b"Sec-WebSocket-Version", b"13")], 400, b"Key"),
        ([(b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="), (b"Sec-WebSocket-Version", b"8")],
         400, b"Sec-WebSocket-Version"),
    ],
)  # fmt: skip
def test_bad_upgrade_headers_are_answered_400_by_websockets(
    ws: str, headers: list[tuple[bytes, bytes]], status: int, says: bytes
) -> None:
    upgrade = [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"), *headers]
    with serve(ws) as (port, seen, _):
        answer = exchange(port, request(b"GET", b"/echo", upgrade))
    assert answer.status == status
    assert says in answer.body
    assert answer.ended == "eof"
    assert not seen.done.is_set()  # the app never ran


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        ([(b"Content-Length", b"5")], 400),
        ([(b"Transfer-Encoding", b"chunked")], 400),
    ],
)
def test_an_upgrade_request_with_a_body_is_refused_before_the_app(
    ws: str, extra: list[tuple[bytes, bytes]], status: int
) -> None:
    """websockets' request parser refuses a body; handed the parsed request, the lean protocol
    must refuse it the same way."""
    with serve(ws) as (port, seen, _), raw_connect(port) as sock:
        sock.sendall(request(b"GET", b"/echo", [*_upgrade_headers(), *extra]))
        answer = read_response(sock)
    assert answer.status == status
    assert not seen.done.is_set()  # the app never ran


def test_every_protocol_gives_the_app_the_same_scope() -> None:
    """The lean protocol's scope, built from uvicorn's parsed request or from websockets', is
    the one uvicorn's own protocol gives (the client's port aside)."""
    target = b"/echo%20it?x=1&y=%20"
    extra = [(b"Sec-WebSocket-Protocol", b"pg.v1, other"), (b"X-Trace", b"caf\xe9")]
    parts: dict[str, dict[str, Any]] = {}
    for name in PROTOCOLS:
        with serve(name) as (port, seen, _), raw_connect(port) as sock:
            sock.sendall(request(b"GET", target, [*_upgrade_headers(), *extra]))
            assert read_response(sock).status == 101
        (scope,) = seen.scopes
        client_host, _ = scope["client"]
        parts[name] = {key: scope[key] for key in _SCOPE_KEYS} | {
            "client": client_host,
            "server": scope["server"][0],
            "headers": sorted(scope["headers"]),
        }
    assert parts["lean"]["path"] == "/echo it"
    assert parts["lean"]["subprotocols"] == ["pg.v1", "other"]
    assert parts["lean"] == parts["websockets-sansio"] == parts["lean-bytes"]


_SCOPE_KEYS = ("type", "asgi", "http_version", "scheme", "root_path", "path", "raw_path",
               "query_string", "subprotocols", "extensions")  # fmt: skip


def test_the_101_carries_the_current_date(ws: str) -> None:
    """uvicorn makes its date header anew every second; a handshake answered seconds after the
    first must not carry the first one's date."""
    with serve(ws) as (port, _seen, _):
        first = _handshake_date(port)
        time.sleep(2.5)
        second = _handshake_date(port)
    assert second > first


def _handshake_date(port: int) -> datetime.datetime:
    with raw_connect(port) as sock:
        sock.sendall(request(b"GET", b"/echo", _upgrade_headers()))
        answer = read_response(sock, quiet=0.05)
    assert answer.status == 101
    return email.utils.parsedate_to_datetime(answer.headers["date"])


def test_a_close_before_accepting_is_403(ws: str) -> None:
    with serve(ws) as (port, seen, _):
        answer = _handshake_answer(port, b"/refuse")
        assert seen.done.wait(START_TIMEOUT)
    assert answer.status == 403
    assert answer.ended == "eof"


def test_an_http_response_before_accepting_is_sent_as_given(ws: str) -> None:
    with serve(ws) as (port, _seen, _):
        answer = _handshake_answer(port, b"/teapot")
    assert answer.status == 418
    assert answer.headers["x-why"] == "tea"
    assert answer.body == b"short and stout"
    assert answer.ended == "eof"


def test_an_app_that_fails_before_accepting_is_500(ws: str) -> None:
    with serve(ws) as (port, _seen, _):
        answer = _handshake_answer(port, b"/crash")
    assert answer.status == 500


def _handshake_answer(port: int, path: bytes) -> Any:
    with raw_connect(port) as sock:
        sock.sendall(request(b"GET", path, _upgrade_headers()))
        return read_response(sock)


def _upgrade_headers() -> list[tuple[bytes, bytes]]:
    return [
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
        (b"Sec-WebSocket-Version", b"13"),
    ]


def test_an_oversized_message_is_closed_1009(ws: str) -> None:
    with serve(ws) as (port, seen, _), ws_connect(port, b"/echo") as raw:
        raw.send(ws_frame(0x1, b"y" * (MAX_SIZE * 1024 + 1)))
        transcript = raw.read_until_close()
        assert seen.done.wait(START_TIMEOUT)
    assert transcript.close_code == 1009
    assert [m["code"] for m in seen.disconnects] == [1009]


def test_invalid_utf8_is_closed_1007() -> None:
    # uvicorn's own protocol passes this case too, but only after logging a traceback.
    with serve("lean") as (port, seen, _), ws_connect(port, b"/echo") as raw:
        raw.send(ws_frame(0x1, b"ok"))
        raw.send(ws_frame(0x1, b"\xff\xfe"))
        transcript = raw.read_until_close()
        assert seen.done.wait(START_TIMEOUT)
    assert transcript.texts == ["ok"]
    assert transcript.close_code == 1007
    assert [m["code"] for m in seen.disconnects] == [1007]


def test_a_silent_peer_is_closed_by_the_ping_timeout(ws: str) -> None:
    """The silent client reads but never answers a ping; the other one answers (websockets'
    client does) and stays open across the same pings."""
    with (
        serve(ws, ws_ping_interval=0.2, ws_ping_timeout=0.3) as (port, seen, _),
        ws_connect(port, b"/echo") as silent,
        connect(f"ws://127.0.0.1:{port}/echo") as answering,
    ):
        transcript = silent.read_until_close()  # skips the ping frames
        assert transcript.close_code == 1011
        assert "keepalive" in transcript.close_reason
        answering.send("still here")
        assert answering.recv() == "still here"
    # The lean protocol tells the app why (uvicorn's says 1005, as for a vanished peer).
    codes = [m["code"] for m in seen.disconnects]
    assert codes[0] == (1011 if ws.startswith("lean") else 1005)


def test_a_close_from_the_client_reaches_the_app_with_its_code_and_reason(ws: str) -> None:
    with serve(ws) as (port, seen, _):
        with connect(f"ws://127.0.0.1:{port}/echo") as client:
            client.send("hi")
            assert client.recv() == "hi"
            client.close(4000, "client bye")
        assert seen.done.wait(START_TIMEOUT)
    assert client.close_code == 4000  # the server's echo of it
    assert seen.disconnects == [
        {"type": "websocket.disconnect", "code": 4000, "reason": "client bye"}
    ]


def test_a_close_from_the_app_reaches_the_client_and_is_answered(ws: str) -> None:
    with serve(ws) as (port, seen, _):
        with connect(f"ws://127.0.0.1:{port}/close") as client:
            client.send("go")
            with pytest.raises(ConnectionClosed) as closed:
                client.recv()
        assert seen.done.wait(START_TIMEOUT)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "bye")
    assert seen.disconnects[0]["code"] == 4001


def test_a_client_that_stops_reading_pauses_the_apps_sends_until_it_reads(ws: str) -> None:
    with serve(ws) as (port, seen, _), ws_connect(port, b"/flood") as raw:
        assert seen.paused.wait(START_TIMEOUT), "the transport never paused writing"
        assert not seen.resumed.is_set()  # the app's send waits for the client
        texts = _read_texts(raw, until="last")
        assert seen.resumed.wait(START_TIMEOUT)
        raw.send(ws_frame(0x8, struct.pack("!H", 1000)))
        assert seen.done.wait(START_TIMEOUT)
    assert texts[-1] == "last"
    assert len(texts) > 1


def _read_texts(raw: RawWebSocket, *, until: str) -> list[str]:
    """Read text frames until one equals ``until`` (bounded by the flood's size)."""
    texts = []
    for _ in range(FLOOD_FRAMES + 1):
        frame = raw.next_frame()
        assert frame is not None and frame[0] == 0x1, f"not a text frame: {frame}"
        texts.append(frame[1].decode())
        if texts[-1] == until:
            return texts
    raise AssertionError("no last frame")


def test_shutdown_closes_open_sockets_with_1012(ws: str) -> None:
    with serve(ws) as (port, seen, server), connect(f"ws://127.0.0.1:{port}/echo") as client:
        client.send("hi")
        assert client.recv() == "hi"
        server.should_exit = True
        with pytest.raises(ConnectionClosed) as closed:
            client.recv()
        assert seen.done.wait(START_TIMEOUT)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1012
    assert seen.disconnects[0]["code"] == 1012


def test_an_idle_lean_socket_keeps_no_handshake() -> None:
    """What the lean protocol promises an idle socket does not hold (its module docstring)."""
    held: list[LeanWebSocketProtocol] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        held.append(send.__self__)  # type: ignore[attr-defined]
        while (await receive())["type"] != "websocket.disconnect":
            pass

    with serve("lean", app) as (port, _, _), connect(f"ws://127.0.0.1:{port}/"):
        protocol = _wait_for(held)
        assert protocol._response is None and protocol._state == {}
        assert not hasattr(protocol, "__dict__")


def _wait_for(held: list[LeanWebSocketProtocol]) -> LeanWebSocketProtocol:
    for _ in range(int(START_TIMEOUT / 0.02)):
        if held:
            return held[0]
        threading.Event().wait(0.02)
    raise AssertionError("the app never accepted")


def test_a_closed_ws_connection_leaves_nothing_for_the_cyclic_gc(redis_server: RedisServer) -> None:
    """README, "Connection cost": the HTTP protocol an upgrade replaces, and a ``WS /ws``
    connection once closed (its feeds, outbox, session and socket), are freed by refcounting,
    not left in reference cycles for the cyclic GC (which would walk them first)."""
    env = {
        "PUSHGATE_REDIS_URL": redis_db(redis_server, 7),
        "PUSHGATE_AUTH_DISABLED": "true",
        "PUSHGATE_NAMESPACES": json.dumps({"news": {"publish": True}}),
    }
    app = create_app(Settings.from_env(env), Connections(100))
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what any collection finds stays in gc.garbage
    try:
        with serve("lean", app, lifespan="on") as (port, _, server):
            for number in range(3):
                with connect(f"ws://127.0.0.1:{port}/ws") as client:
                    call = {"jsonrpc": "2.0", "id": 1, "method": "subscribe"}
                    client.send(json.dumps({**call, "params": {"channel": f"news:c{number}"}}))
                    assert json.loads(client.recv())["result"]["channel"] == f"news:c{number}"
            for _ in range(int(START_TIMEOUT / 0.02)):  # the server sees the closes
                if not server.server_state.connections:
                    break
                threading.Event().wait(0.02)
            assert not server.server_state.connections
            gc.collect()
            found = {type(thing).__name__ for thing in gc.garbage if _of(server, thing)}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert found == set()


def test_closed_sse_streams_and_job_sockets_leave_nothing_for_the_cyclic_gc(
    redis_server: RedisServer,
) -> None:
    """gateway/server.py's GC thresholds count on it: a live ``GET /sse`` stream the client
    left (found idle, or by a publication written after it left) and a ``/ws/jobs`` socket
    the client closed while the gateway waited for its job are freed by refcounting, not left
    in reference cycles. (A stream left during its first history read is cancelled inside
    redis-py and leaves one: README, "Connection cost".)"""
    env = {
        "PUSHGATE_REDIS_URL": redis_db(redis_server, 8),
        "PUSHGATE_AUTH_DISABLED": "true",
        "PUSHGATE_NAMESPACES": json.dumps({"news": {"publish": True}}),
    }
    app = create_app(Settings.from_env(env), Connections(100))
    with serve("lean", app, lifespan="on") as (port, _, server):
        _live_sse(port, "news:warm").close()  # start-up's own garbage (logging, scripts)
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)  # what any collection finds stays in gc.garbage
        try:
            left = [_live_sse(port, f"news:gone{number}") for number in range(3)]
            for sock in left:
                sock.close()
            for number in range(3):  # found by the write
                _publish(port, f"news:gone{number}")
            for number in range(3):
                _live_sse(port, f"news:idle{number}").close()  # found idle
                with connect(f"ws://127.0.0.1:{port}/ws/jobs/unknown{number}"):
                    pass  # closed by the client while the gateway waits for the job
            for _ in range(int(START_TIMEOUT / 0.02)):
                if not server.server_state.connections and not server.server_state.tasks:
                    break
                threading.Event().wait(0.02)
            gc.collect()
            found = {type(thing).__name__ for thing in gc.garbage if _served(thing)}
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    assert found == set()


def _live_sse(port: int, channel: str) -> socket.socket:
    """A ``GET /sse`` stream past its first history read: it got a publication."""
    sock = raw_connect(port)
    sock.sendall(f"GET /sse?channel={channel} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while b"retry:" not in data:
        data += sock.recv(4096)
    _publish(port, channel)
    while b"id:" not in data:
        data += sock.recv(4096)
    return sock


# Modules of a stream's or socket's serving side. (redis-py leaves a cycle of its own when it
# opens a connection to a Redis older than 7.2: CLIENT SETINFO's ResponseError, with its frames.)
_SERVING = ("gateway", "pushgate", "starlette", "anyio", "uvicorn", "asyncio", "websockets")


def _served(thing: object) -> bool:
    module = getattr(type(thing), "__module__", "") or ""
    if isinstance(thing, types.FrameType):
        module = thing.f_globals.get("__name__", "")
    return module.startswith(_SERVING) and not module.startswith("websockets.sync")


def _publish(port: int, channel: str) -> None:
    path = f"/channels/{channel}/publications".encode()
    json_body = [(b"Content-Type", b"application/json")]
    answer = exchange(port, request(b"POST", path, json_body, b'{"data":"x"}'))
    assert answer.status == 200, answer.body


def _of(server: uvicorn.Server, thing: object) -> bool:
    """Whether ``thing`` is a connection's part of ``server`` (earlier tests' servers may leave
    garbage of their own, e.g. a protocol whose app failed)."""
    if isinstance(thing, LeanWebSocketProtocol):
        return thing._shared.connections is server.server_state.connections
    if isinstance(thing, HttpToolsProtocol):
        return thing.server_state is server.server_state
    return type(thing).__name__ in {"RpcConnection", "Feed", "Outbox"}
