"""A real HTTP origin for tests: fixture pages, and endpoints that misbehave on purpose.

Routes (GET):
    /pages/links.html, /pages/base.html  fixture pages; ``?coding=gzip|deflate|raw-deflate``
                                          serves them compressed, any other coding is only named
    /drip              HTML that arrives one byte a second, for up to a minute
    /huge              6 MiB of HTML, chunked (no Content-Length)
    /huge-declared     declares 10 MiB, sends 64 KiB and hangs up: only an up-front
                       Content-Length check reports it as too large
    /gzip-bomb         ~50 KB of gzip that inflates to 50 MiB of spaces
    /redirect-loop     302 to itself
    /redirect?to=URL   302 to URL
    /image.png         an image
    /error             500, always
    /flaky?key=K&fail=N  500 for the first N requests with key K, then a page with one link
    /many-links?count=N  a page with N distinct links (about 27 bytes each)
    /stall?key=K&times=N&seconds=S  the first N requests with key K get nothing for S seconds
                       (or until the origin stops), then that page; later ones get it at once
    anything else      404 (e.g. /missing)
"""

from __future__ import annotations

import contextlib
import functools
import socket
import sys
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

_HTML = "text/html; charset=utf-8"
_KIB = 1024
_MIB = 1024 * _KIB
_DRIP_SECONDS = 60
_HUGE_BYTES = 6 * _MIB
_DECLARED_BYTES = 10 * _MIB
_BOMB_BYTES = 50 * _MIB
# Idle keep-alive connections are dropped after this long, so no handler thread lingers.
_IDLE_TIMEOUT = 10.0

LINKS_PAGE = """<!doctype html>
<html>
<head>
<meta charset="utf-8">
<title>
  Links   fixture
</title>
</head>
<body>
<a href="a/b.html">relative</a>
<a href="../up.html">parent directory</a>
<a href="/abs">absolute path</a>
<a href="https://example.com/x">absolute URL</a>
<a href="//example.org/proto-relative">protocol-relative</a>
<a href="a/b.html#section">the first link again, with a fragment</a>
<a href="/abs?q=1#frag">query and fragment</a>
<a href="#top">this page</a>
<a href="../up.html">duplicate</a>
<a href=" whitespace-padded.html ">padded</a>
<a href="mailto:someone@example.com">mail</a>
<a href="javascript:void(0)">script</a>
<a name="no-href">an anchor without href</a>
</body>
</html>
"""

BASE_PAGE = """<!doctype html>
<html>
<head>
<title>Base fixture</title>
<base target="_blank">
<base href="/sub/dir/">
<base href="/ignored/">
</head>
<body>
<a href="page.html">page</a>
<a href="../sibling.html">sibling</a>
<a href="/root.html">root</a>
<a href="?q=2">query only</a>
<a href="">empty</a>
<a href="https://example.com/elsewhere">elsewhere</a>
</body>
</html>
"""

# What /flaky and /stall serve once they stop misbehaving.
FINE_PAGE = """<!doctype html>
<html><head><title>Fine in the end</title></head>
<body><a href="/pages/links.html">links</a></body></html>
"""

_PAGES = {"/pages/links.html": LINKS_PAGE, "/pages/base.html": BASE_PAGE}

# What a browser resolves each page's links to, written out by hand; "{base}" is the origin.
LINKS_EXPECTED = (
    "{base}/pages/a/b.html",
    "{base}/up.html",
    "{base}/abs",
    "https://example.com/x",
    "http://example.org/proto-relative",
    "{base}/abs?q=1",
    "{base}/pages/links.html",
    "{base}/pages/whitespace-padded.html",
)
BASE_EXPECTED = (
    "{base}/sub/dir/page.html",
    "{base}/sub/sibling.html",
    "{base}/root.html",
    "{base}/sub/dir/?q=2",
    "{base}/sub/dir/",
    "https://example.com/elsewhere",
)
_EXPECTED = {"links": LINKS_EXPECTED, "base": BASE_EXPECTED}

_COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda data: zlib.compress(data, wbits=16 + zlib.MAX_WBITS),
    "deflate": lambda data: zlib.compress(data, wbits=zlib.MAX_WBITS),
    "raw-deflate": lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS),
}


def expected_links(origin: Origin, name: str) -> list[str]:
    """The links of /pages/``name``.html as served by ``origin``."""
    return [link.format(base=origin.base_url) for link in _EXPECTED[name]]


@dataclass
class _State:
    """What handler threads share: the request log, per-key counters, the stop signal."""

    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[str] = field(default_factory=list)
    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def record(self, target: str) -> None:
        with self.lock:
            self.requests.append(target)

    def count(self, route: str, key: str) -> int:
        """How many requests ``route`` has had with ``key``, this one included."""
        with self.lock:
            self.counts[route, key] = self.counts.get((route, key), 0) + 1
            return self.counts[route, key]


class Origin:
    """A running origin; see the module docstring for its routes."""

    def __init__(self, server: _Server, closed_port: int) -> None:
        self.base_url = f"http://127.0.0.1:{server.server_address[1]}"
        self._state = server.state
        self._closed_port = closed_port

    def url(self, path: str) -> str:
        return self.base_url + path

    def closed_port_url(self) -> str:
        """A loopback URL whose port refuses connections."""
        return f"http://127.0.0.1:{self._closed_port}/"

    def hits(self, target: str) -> int:
        """How many requests had ``target``'s path and at least its query parameters."""
        wanted = urlsplit(target)
        params = set(parse_qsl(wanted.query))
        with self._state.lock:
            seen = [urlsplit(request) for request in self._state.requests]
        return sum(1 for s in seen if s.path == wanted.path and params <= set(parse_qsl(s.query)))


@contextlib.contextmanager
def start_origin() -> Iterator[Origin]:
    """Serve on a free loopback port in a daemon thread; stop and join it on exit."""
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, name="test-origin", daemon=True)
    # Bound but never listening: connections to its port are refused, and nobody else gets it.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        thread.start()
        try:
            yield Origin(server, closed.getsockname()[1])
        finally:
            server.state.stop.set()
            server.shutdown()
            thread.join()
            server.server_close()


class _Server(ThreadingHTTPServer):
    # Do not wait for handler threads on close: the stop event ends drips, idle ones time out.
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = _State()

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        # Clients hanging up mid-response is what several routes provoke; stay quiet about it.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = _IDLE_TIMEOUT
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """Silent: test output is for test failures."""

    def do_GET(self) -> None:
        self.server.state.record(self.path)
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        route = _ROUTES.get(url.path)
        try:
            if url.path in _PAGES:
                self._page(_PAGES[url.path], query.get("coding"))
            elif route is not None:
                route(self, query)
            else:
                self._send(404, b"<title>Not found</title>")
        except ConnectionError:
            self.close_connection = True

    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = _HTML,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, chunks: Iterable[bytes]) -> None:
        """A 200 HTML response in chunked transfer encoding, each chunk sent as it comes."""
        self.send_response(200)
        self.send_header("Content-Type", _HTML)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def _page(self, page: str, coding: str | None) -> None:
        body = page.encode()
        if coding is None:
            self._send(200, body)
            return
        compress = _COMPRESSORS.get(coding)
        # Content-Encoding names "deflate" for both framings; unknown codings are sent as is.
        wire = body if compress is None else compress(body)
        name = "deflate" if coding == "raw-deflate" else coding
        self._send(200, wire, headers=[("Content-Encoding", name)])

    def _drip(self, query: dict[str, str]) -> None:
        self._stream(_drip(self.server.state.stop))

    def _huge(self, query: dict[str, str]) -> None:
        block = b" " * (64 * _KIB)
        self._stream(block for _ in range(_HUGE_BYTES // len(block)))

    def _huge_declared(self, query: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", _HTML)
        self.send_header("Content-Length", str(_DECLARED_BYTES))
        self.end_headers()
        self.wfile.write(b" " * (64 * _KIB))
        self.close_connection = True

    def _gzip_bomb(self, query: dict[str, str]) -> None:
        self._send(200, _gzip_bomb(), headers=[("Content-Encoding", "gzip")])

    def _redirect_loop(self, query: dict[str, str]) -> None:
        self._send(302, headers=[("Location", "/redirect-loop")])

    def _redirect(self, query: dict[str, str]) -> None:
        self._send(302, headers=[("Location", query["to"])])

    def _image(self, query: dict[str, str]) -> None:
        self._send(200, b"\x89PNG\r\n\x1a\n", content_type="image/png")

    def _error(self, query: dict[str, str]) -> None:
        self._send(500, b"<title>Server error</title>")

    def _many_links(self, query: dict[str, str]) -> None:
        self._send(200, many_links_page(int(query["count"])))

    def _flaky(self, query: dict[str, str]) -> None:
        if self.server.state.count("flaky", query["key"]) <= int(query["fail"]):
            self._error(query)
        else:
            self._send(200, FINE_PAGE.encode())

    def _stall(self, query: dict[str, str]) -> None:
        state = self.server.state
        if state.count("stall", query["key"]) <= int(query["times"]):
            state.stop.wait(float(query["seconds"]))
        self._send(200, FINE_PAGE.encode())


_ROUTES: dict[str, Callable[[_Handler, dict[str, str]], None]] = {
    "/drip": _Handler._drip,
    "/huge": _Handler._huge,
    "/huge-declared": _Handler._huge_declared,
    "/gzip-bomb": _Handler._gzip_bomb,
    "/redirect-loop": _Handler._redirect_loop,
    "/redirect": _Handler._redirect,
    "/image.png": _Handler._image,
    "/error": _Handler._error,
    "/flaky": _Handler._flaky,
    "/many-links": _Handler._many_links,
    "/stall": _Handler._stall,
}


@functools.cache
def many_links_page(count: int) -> bytes:
    anchors = "".join(f'<a href="/l/{n}">x</a>' for n in range(count))
    return f"<html><head><title>Many links</title></head><body>{anchors}</body></html>".encode()


def _drip(stop: threading.Event) -> Iterator[bytes]:
    """One byte a second until a minute has passed or the origin stops."""
    for _ in range(_DRIP_SECONDS):
        yield b" "
        if stop.wait(1.0):
            return


@functools.cache
def _gzip_bomb() -> bytes:
    """Built on first use, a mebibyte at a time, so 50 MiB are never in memory at once."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * _MIB
    parts = [compressor.compress(block) for _ in range(_BOMB_BYTES // _MIB)]
    return b"".join([*parts, compressor.flush()])
