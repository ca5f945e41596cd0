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
from collections.abc import Callable, Iterable
from typing import NamedTuple

import httpcore
import httpx

from worker.special_addresses import (
    IPV4_SPECIAL_BLOCKS,
    IPV6_GLOBAL_UNICAST,
    IPV6_SPECIAL_BLOCKS,
    SpecialBlock,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_LOW_32_BITS = 0xFFFFFFFF


def _last_32_bits(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    return (ipaddress.IPv4Address(int(ip) & _LOW_32_BITS),)


def _sixtofour(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    return (ip.sixtofour,) if ip.sixtofour is not None else ()


def _teredo(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    # (server, client), the client already un-inverted: packets are relayed to the client.
    return ip.teredo or ()


class _Embedding(NamedTuple):
    prefix: ipaddress.IPv6Network
    extract: Callable[[ipaddress.IPv6Address], tuple[ipaddress.IPv4Address, ...]]
    # True when a connection to the IPv6 address reaches the embedded IPv4 host and nothing
    # else, so the address is exactly as public as that host. The other forms are refused on
    # their own account too (deny table, or outside 2000::/3), and their IPv4 is still checked
    # so the refusal names it.
    judged_by_ipv4: bool


# Every IPv6 form that carries an IPv4 address; the prefixes do not overlap.
_EMBEDDINGS = (
    # IPv4-mapped: the socket layer sends these as IPv4 packets to the embedded address.
    _Embedding(ipaddress.IPv6Network("::ffff:0:0/96"), _last_32_bits, judged_by_ipv4=True),
    # NAT64 well-known prefix: only global IPv4 may be written with it (RFC 6052, section 3.1).
    _Embedding(ipaddress.IPv6Network("64:ff9b::/96"), _last_32_bits, judged_by_ipv4=True),
    # 6to4: the packet is tunnelled to the 6to4 router at the embedded address.
    _Embedding(ipaddress.IPv6Network("2002::/16"), _sixtofour, judged_by_ipv4=True),
    # IPv4-compatible (deprecated by RFC 4291): ::127.0.0.1 is outside 2000::/3 and refused.
    _Embedding(ipaddress.IPv6Network("::/96"), _last_32_bits, judged_by_ipv4=False),
    # IPv4-translated (RFC 2765): reaches whatever a local SIIT translator maps it to.
    _Embedding(ipaddress.IPv6Network("::ffff:0:0:0/96"), _last_32_bits, judged_by_ipv4=False),
    # Local-use NAT64 (RFC 8215): a local translator, whose IPv4 side may be private.
    _Embedding(ipaddress.IPv6Network("64:ff9b:1::/48"), _last_32_bits, judged_by_ipv4=False),
    # Teredo: relayed through a NAT to a client the guard cannot see behind it.
    _Embedding(ipaddress.IPv6Network("2001::/32"), _teredo, judged_by_ipv4=False),
)


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
    """Whether ``ip``, and every IPv4 address it embeds, is globally routable unicast."""
    return not why_not_public(ip)


def why_not_public(ip: IPAddress) -> list[str]:
    """Each reason ``ip`` is not public; empty when it is.

    An address is public when it is in no special-purpose block (worker/special_addresses.py),
    is IPv6 global unicast (2000::/3) if IPv6, and every IPv4 address it embeds is public.
    ``is_global`` is not used: Python 3.11 calls 192.0.0.8, ::ffff:0:10.0.0.1 (IPv4-translated),
    3fff::1 and fe00::1 global, and judges 64:ff9b::7f00:1 (NAT64 of 127.0.0.1) and
    2002:7f00:1:: (6to4 of 127.0.0.1) by their IPv6 prefix alone.
    """
    if isinstance(ip, ipaddress.IPv4Address):
        block = _special_block(ip, IPV4_SPECIAL_BLOCKS)
        return [] if block is None else [_describe(block)]
    embedding = next((form for form in _EMBEDDINGS if ip in form.prefix), None)
    reasons: list[str] = []
    if embedding is None or not embedding.judged_by_ipv4:
        block = _special_block(ip, IPV6_SPECIAL_BLOCKS)
        if block is not None:
            reasons.append(_describe(block))
        elif ip not in IPV6_GLOBAL_UNICAST:
            reasons.append(f"outside IPv6 global unicast {IPV6_GLOBAL_UNICAST}")
    if embedding is not None:
        for embedded in embedding.extract(ip):
            reasons.extend(f"embeds {embedded}: {reason}" for reason in why_not_public(embedded))
    return reasons


def _special_block(ip: IPAddress, blocks: tuple[SpecialBlock, ...]) -> SpecialBlock | None:
    # The most specific entry names the address best: 192.0.0.8 is the dummy address, not just
    # one of the IETF protocol assignments.
    matches = [block for block in blocks if ip in block.network]
    return max(matches, key=lambda block: block.network.prefixlen, default=None)


def _describe(block: SpecialBlock) -> str:
    return f"{block.network} is {block.name} ({block.rfc})"


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
        reasons = why_not_public(ipaddress.ip_address(address))
        if reasons:
            raise BlockedAddressError(
                f"refusing non-public address {address} (for {host}): {'; '.join(reasons)}"
            )


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
