"""SSRF guard: every outgoing connection is checked at connect time, after DNS resolution.

Checking the URL is not enough: a public name can resolve to 127.0.0.1, a redirect can point
anywhere, and a second lookup can answer differently (DNS rebinding). So the guard lives in the
httpcore network backend: it resolves each host once, refuses if any address is not public, and
connects to exactly the addresses it checked. TLS still verifies the hostname, because httpcore
passes the origin's host as ``server_hostname`` to ``start_tls``, not the address we dialled.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import socket
from collections.abc import Iterable

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# RFC 8215 local-use NAT64 prefix: it reaches whatever the local translator maps it to.
# Python 3.11 counts it as global.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_BITS = 0xFFFFFFFF


class NetGuardError(Exception):
    """A connection the guard would not make."""


class BlockedAddressError(NetGuardError):
    """The host is, or resolves to, an address that is not publicly routable."""


class DnsError(NetGuardError):
    """The host name did not resolve; ``transient`` when the resolver said "try again"."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def is_public_address(ip: IPAddress) -> bool:
    """Whether ``ip`` (or the IPv4 address it embeds) is globally routable unicast."""
    unwrapped = _embedded_ipv4(ip) or ip
    if unwrapped in _LOCAL_NAT64:
        return False
    # is_global, not "not is_private": 100.64.0.0/10 (carrier-grade NAT) is neither.
    return unwrapped.is_global and not unwrapped.is_multicast


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries, which is where its packets really go.

    ``is_global`` judges these by their IPv6 prefix alone and calls 64:ff9b::7f00:1 (NAT64 of
    127.0.0.1) or 2002:7f00:1:: (6to4 of 127.0.0.1) global.
    """
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # (server, client): traffic is relayed to the client
    if ip in _NAT64 or int(ip) >> 32 == 0:  # NAT64, or IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(ip) & _IPV4_BITS)
    return None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that only connects to public addresses.

    ``allow_private`` lifts the address check (local development, tests) but keeps the single
    lookup and the refusal of Unix sockets.
    """

    def __init__(self, *, allow_private: bool = False) -> None:
        self._allow_private = allow_private
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await _resolve(host, port)
        except TimeoutError:
            # A slow resolver is a connect timeout to the caller, as it is inside httpcore.
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        if not self._allow_private:
            _require_public(host, addresses)
        connect = functools.partial(
            self._backend.connect_tcp,
            port=port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )
        *fallbacks, last = addresses
        for address in fallbacks:
            with contextlib.suppress(httpcore.ConnectError, httpcore.ConnectTimeout):
                return await connect(address)
        return await connect(last)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddressError(f"refusing to connect to Unix socket {path}")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


async def _resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order of preference."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        transient = isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_AGAIN
        raise DnsError(f"cannot resolve {host}: {exc}", transient=transient) from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise DnsError(f"{host} resolves to no address")
    return addresses


def _require_public(host: str, addresses: list[str]) -> None:
    # One private answer blocks the host, even among public ones: the fallback order could dial
    # it, and mixing private into public answers is how rebinding attacks get through.
    for address in addresses:
        if not is_public_address(ipaddress.ip_address(address)):
            raise BlockedAddressError(f"refusing non-public address {address} (for {host})")


def guarded_transport(*, allow_private: bool, limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every connection, redirects included, goes through the guard."""
    ssl_context = httpx.create_ssl_context(trust_env=False)
    transport = httpx.AsyncHTTPTransport(verify=ssl_context, trust_env=False, limits=limits)
    # httpx 0.28 offers no way to hand its pool a network backend. Its transport is a thin
    # wrapper around this one pool, so replace the pool with one built the same way plus ours.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(allow_private=allow_private),
    )
    return transport
