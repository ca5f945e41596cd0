"""One bounded fetch of an HTML page: a total deadline, a byte cap, and the SSRF guard."""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass

import httpx

from pushgate.core.events import FailureCode
from pushgate.core.settings import FetchSettings
from worker.netguard import BlockedAddressError, DnsError, NetGuardError, guarded_transport

_SCHEMES = frozenset({"http", "https"})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_CODINGS = {"gzip": "gzip", "x-gzip": "gzip", "deflate": "deflate"}
# Per-operation bounds; the attempt as a whole is bounded by FetchSettings.timeout.
_CONNECT_TIMEOUT = 5.0
_IO_TIMEOUT = 10.0
_POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


@dataclass(frozen=True, slots=True)
class Page:
    """A fetched page within the size limits: the final URL, status, decoded body and charset."""

    final_url: str
    status_code: int
    body: bytes  # decompressed
    charset: str | None  # from the Content-Type header


class FetchError(Exception):
    """A failed fetch attempt; ``transient`` says whether trying again may succeed."""

    def __init__(self, code: FailureCode, message: str, *, transient: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.transient = transient


def build_client(limits: FetchSettings, *, allow_private: bool) -> httpx.AsyncClient:
    """The client a worker shares between fetches: guarded, redirect-following, bounded."""
    return httpx.AsyncClient(
        transport=guarded_transport(allow_private=allow_private, limits=_POOL_LIMITS),
        # Proxy variables would route requests around the guard, to wherever the proxy connects.
        trust_env=False,
        follow_redirects=True,
        max_redirects=limits.max_redirects,
        timeout=httpx.Timeout(
            min(_IO_TIMEOUT, limits.timeout), connect=min(_CONNECT_TIMEOUT, limits.timeout)
        ),
        headers={
            "User-Agent": limits.user_agent,
            "Accept": "text/html,application/xhtml+xml",
            # Only codings we can inflate under a cap; see _BodyDecoder.
            "Accept-Encoding": "gzip, deflate",
        },
    )


def validate_fetch_url(url: str) -> None:
    """Raise FetchError(INVALID_URL) unless ``url`` is an absolute http(s) URL with a host."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise FetchError(FailureCode.INVALID_URL, f"invalid URL {url!r}: {exc}") from None
    if parsed.scheme not in _SCHEMES or not parsed.host:
        raise FetchError(FailureCode.INVALID_URL, f"not an absolute http(s) URL: {url!r}")


async def fetch_page(client: httpx.AsyncClient, url: str, limits: FetchSettings) -> Page:
    """GET ``url`` with redirects; return the HTML page or raise FetchError."""
    validate_fetch_url(url)
    try:
        # httpx has no total deadline: a server dripping a byte a second never trips a read timeout.
        async with asyncio.timeout(limits.timeout):
            return await _fetch(client, url, limits)
    except TimeoutError:
        message = f"no complete response within {limits.timeout:g} s"
        raise FetchError(FailureCode.TIMEOUT, message, transient=True) from None
    except (NetGuardError, httpx.HTTPError, httpx.InvalidURL) as exc:
        raise _as_fetch_error(exc) from exc


async def _fetch(client: httpx.AsyncClient, url: str, limits: FetchSettings) -> Page:
    async with client.stream("GET", url) as response:
        _check_response(response, limits.max_bytes)
        decoder = _BodyDecoder(_content_coding(response), limits.max_bytes)
        received = 0
        # Raw bytes, not aiter_bytes(): httpx inflates a whole chunk before we could measure it.
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if received > limits.max_bytes:
                raise _too_large(limits.max_bytes)
            decoder.feed(chunk)
        return Page(
            final_url=str(response.url),
            status_code=response.status_code,
            body=decoder.body(),
            charset=response.charset_encoding,
        )


def _check_response(response: httpx.Response, max_bytes: int) -> None:
    """Refuse on the headers alone, before a byte of the body is read."""
    status = response.status_code
    if status >= 400:
        message = f"HTTP {status} {response.reason_phrase}".rstrip()
        raise FetchError(FailureCode.HTTP_ERROR, message, transient=status >= 500 or status == 429)
    media_type = response.headers.get("Content-Type", "").partition(";")[0].strip().lower()
    if media_type not in _HTML_TYPES:
        raise FetchError(FailureCode.NOT_HTML, f"content type is {media_type or 'missing'}")
    declared = response.headers.get("Content-Length", "")
    if declared.isdecimal() and int(declared) > max_bytes:
        raise _too_large(max_bytes)


def _content_coding(response: httpx.Response) -> str | None:
    """The one compression to undo ("gzip" or "deflate"), or None for an identity body."""
    header = response.headers.get("Content-Encoding", "")
    names = (name.strip().lower() for name in header.split(","))
    codings = [name for name in names if name not in ("", "identity")]
    if not codings:
        return None
    if len(codings) == 1 and codings[0] in _CODINGS:
        return _CODINGS[codings[0]]
    raise FetchError(FailureCode.HTTP_ERROR, f"unsupported content-encoding {header!r}")


class _BodyDecoder:
    """Undoes the content coding chunk by chunk; never inflates past ``limit`` + 1 bytes.

    ``max_length`` makes zlib stop once the output would pass the cap, so a small gzip bomb
    costs at most ``limit`` bytes of memory before it is refused.
    """

    def __init__(self, coding: str | None, limit: int) -> None:
        self._coding = coding
        self._limit = limit
        self._body = bytearray()
        self._head = b""  # deflate bytes held back until the framing is known
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if coding == "gzip" else None

    def feed(self, chunk: bytes) -> None:
        if self._coding is None:
            self._keep(chunk)
            return
        if self._inflater is None:
            self._head += chunk
            if len(self._head) < 2:
                return
            chunk, self._head = self._head, b""
            self._inflater = zlib.decompressobj(_deflate_wbits(chunk))
        try:
            self._keep(self._inflater.decompress(chunk, self._limit + 1 - len(self._body)))
        except zlib.error as exc:
            message = f"corrupt {self._coding} body: {exc}"
            raise FetchError(FailureCode.HTTP_ERROR, message) from None

    def body(self) -> bytes:
        return bytes(self._body)

    def _keep(self, data: bytes) -> None:
        self._body += data
        if len(self._body) > self._limit:
            raise _too_large(self._limit)


def _deflate_wbits(head: bytes) -> int:
    """zlib-wrapped deflate as the RFC says, or raw deflate as some servers send it."""
    cmf, flg = head[0], head[1]
    is_zlib = cmf & 0x0F == zlib.DEFLATED and ((cmf << 8) | flg) % 31 == 0
    return zlib.MAX_WBITS if is_zlib else -zlib.MAX_WBITS


def _too_large(max_bytes: int) -> FetchError:
    return FetchError(FailureCode.TOO_LARGE, f"body is larger than {max_bytes} bytes")


def _as_fetch_error(exc: NetGuardError | httpx.HTTPError | httpx.InvalidURL) -> FetchError:
    message = str(exc) or type(exc).__name__
    match exc:
        case BlockedAddressError():
            return FetchError(FailureCode.BLOCKED_ADDRESS, message)
        case DnsError(transient=transient):
            return FetchError(FailureCode.DNS_ERROR, message, transient=transient)
        case httpx.TimeoutException():
            return FetchError(FailureCode.TIMEOUT, message, transient=True)
        case httpx.ConnectError():
            return FetchError(FailureCode.CONNECT_ERROR, message, transient=True)
        case httpx.TooManyRedirects():
            return FetchError(FailureCode.TOO_MANY_REDIRECTS, message)
        case httpx.UnsupportedProtocol():  # redirected to a URL that is not http(s), e.g. ftp:
            return FetchError(FailureCode.INVALID_URL, message)
        case httpx.InvalidURL():  # httpx could not make a request URL of a Location (mailto:)
            return FetchError(FailureCode.INVALID_URL, f"redirected to an invalid URL: {message}")
        case _:  # the connection broke, or the server sent malformed HTTP
            return FetchError(FailureCode.HTTP_ERROR, message, transient=True)
