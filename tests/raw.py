"""Raw bytes on real sockets: requests and frames that no well-behaved client library sends."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

TIMEOUT = 15.0


@dataclass
class RawResponse:
    """The first HTTP response on a connection, and how the connection ended after it."""

    status: int
    headers: dict[str, str]
    body: bytes
    ended: str  # "eof": closed cleanly, "reset", or "open" (still open when we stopped reading)
    seconds: float = 0.0  # from sending the request to the end of the response
    raw: bytes = field(default=b"", repr=False)

    def error_code(self) -> str:
        """The ``error.code`` of a JSON error body (asserting the body is one)."""
        assert self.headers.get("content-type", "").startswith("application/json"), self
        code = json.loads(self.body)["error"]["code"]
        assert isinstance(code, str)
        return code


def request(
    method: bytes, path: bytes, headers: Sequence[tuple[bytes, bytes]] = (), body: bytes = b""
) -> bytes:
    """An HTTP/1.1 request with ``Host``, the given headers and a ``Content-Length`` for a body."""
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: 127.0.0.1"]
    lines += [name + b": " + value for name, value in headers]
    if body:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def connect(port: int, *, timeout: float = TIMEOUT) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def exchange(port: int, data: bytes, *, timeout: float = TIMEOUT) -> RawResponse:
    """Send ``data`` in one go on a new connection and read the answer until the server closes
    (or ``timeout`` passes)."""
    with connect(port, timeout=timeout) as sock:
        started = time.monotonic()
        sock.sendall(data)
        return read_response(sock, started)


def read_response(
    sock: socket.socket, started: float | None = None, *, quiet: float = 0.5
) -> RawResponse:
    """Read one response from ``sock``, then on until the connection ends or stays quiet for
    ``quiet`` seconds (``ended`` is then "open")."""
    started = time.monotonic() if started is None else started
    received = b""
    ended = "open"
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            ended = "reset"
            break
        except TimeoutError:
            break
        if not chunk:
            ended = "eof"
            break
        received += chunk
        if _complete(received):
            sock.settimeout(quiet)  # whatever follows (an EOF, we hope) comes at once
    seconds = time.monotonic() - started
    return _parse(received, ended, seconds)


def _complete(received: bytes) -> bool:
    head, sep, body = received.partition(b"\r\n\r\n")
    if not sep:
        return False
    if head.split(b" ", 2)[1:2] == [b"101"]:  # no body: the WebSocket's frames follow
        return True
    length = _headers(head).get("content-length")
    return length is not None and len(body) >= int(length)


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    pairs = (line.partition(":") for line in lines if ":" in line)
    return {name.strip().lower(): value.strip() for name, _, value in pairs}


def _parse(received: bytes, ended: str, seconds: float) -> RawResponse:
    head, _, body = received.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split(b" ")
    status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0
    headers = _headers(head)
    if "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return RawResponse(status, headers, body, ended, seconds, received)


# WebSocket frames (RFC 6455), written and read by hand


class RawWebSocket:
    """A socket past its WebSocket handshake, sending frames as given and reading them raw."""

    def __init__(self, sock: socket.socket, buffered: bytes) -> None:
        self.sock = sock
        self._buffer = buffered  # what came with the handshake's answer: frames already

    def __enter__(self) -> RawWebSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_until_close(self, *, timeout: float = TIMEOUT) -> WsTranscript:
        """Read server frames until a close frame (or the connection ends without one)."""
        transcript = WsTranscript()
        while (frame := self.next_frame(timeout=timeout)) is not None:
            opcode, payload = frame
            if opcode == 0x8:
                if len(payload) >= 2:
                    transcript.close_code = struct.unpack("!H", payload[:2])[0]
                    transcript.close_reason = payload[2:].decode()
                return transcript
            if opcode == 0x1:
                transcript.texts.append(payload.decode())
        return transcript

    def next_frame(self, *, timeout: float = TIMEOUT) -> tuple[int, bytes] | None:
        """The next server frame's (opcode, payload); None once the connection ends."""
        self.sock.settimeout(timeout)
        while (frame := _next_frame(self._buffer)) is None:
            try:
                chunk = self.sock.recv(1 << 20)
            except (ConnectionResetError, TimeoutError):
                return None
            if not chunk:
                return None
            self._buffer += chunk
        opcode, payload, self._buffer = frame
        return opcode, payload


def ws_connect(
    port: int, path: bytes = b"/ws", headers: Sequence[tuple[bytes, bytes]] = ()
) -> RawWebSocket:
    """A WebSocket on ``path``, its handshake done by hand (so any header value can be sent)."""
    key = base64.b64encode(os.urandom(16))
    upgrade = [
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Key", key),
        (b"Sec-WebSocket-Version", b"13"),
        *headers,
    ]
    sock = connect(port)
    sock.sendall(request(b"GET", path, upgrade))
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(4096)
        assert chunk, answer
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return RawWebSocket(sock, answer.partition(b"\r\n\r\n")[2])


def ws_frame(opcode: int, payload: bytes, *, masked: bool = True, rsv: int = 0) -> bytes:
    """One client frame; ``masked=False`` or ``rsv`` break the protocol on purpose."""
    mask = os.urandom(4) if masked else b""
    size = len(payload)
    first = 0x80 | rsv | opcode
    mask_bit = 0x80 if masked else 0
    if size < 126:
        head = struct.pack("!BB", first, mask_bit | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", first, mask_bit | 126, size)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, size)
    body = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload)) if masked else payload
    return head + mask + body


@dataclass
class WsTranscript:
    """What the server sent: its text frames, and its close frame's code (None: none came)."""

    texts: list[str] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""


def _next_frame(buffer: bytes) -> tuple[int, bytes, bytes] | None:
    """(opcode, payload, rest) of the first whole unmasked frame in ``buffer``, if there is one."""
    if len(buffer) < 2:
        return None
    opcode, size, offset = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
    if size == 126:
        if len(buffer) < 4:
            return None
        size, offset = struct.unpack("!H", buffer[2:4])[0], 4
    elif size == 127:
        if len(buffer) < 10:
            return None
        size, offset = struct.unpack("!Q", buffer[2:10])[0], 10
    if len(buffer) < offset + size:
        return None
    return opcode, buffer[offset : offset + size], buffer[offset + size :]


def forged_token(payload: str, secret: str) -> str:
    """An HS256 JWT whose payload is any JSON text, claims of the wrong type included (PyJWT
    refuses to encode those)."""

    def part(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signed = part(b'{"alg":"HS256","typ":"JWT"}') + b"." + part(payload.encode())
    signature = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return (signed + b"." + part(signature)).decode()
