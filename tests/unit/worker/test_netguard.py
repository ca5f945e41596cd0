"""The SSRF guard: which addresses count as public, and what the backend refuses to dial."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Callable
from ipaddress import IPv4Address, IPv6Address, IPv6Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.netguard import (
    BlockedAddressError,
    DnsError,
    GuardedBackend,
    IPAddress,
    is_public_address,
    why_not_public,
)
from worker.special_addresses import IPV4_SPECIAL_BLOCKS, IPV6_SPECIAL_BLOCKS

NOT_PUBLIC = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",  # carrier-grade NAT: neither private nor global
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "fe80::1",
    "fc00::1",
    "ff02::1",
    "ff0e::1",  # global-scope multicast: is_global, but not unicast
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::127.0.0.1",  # IPv4-compatible
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b:1::a00:1",  # local-use NAT64
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2001:0:4136:e378:8000:63bf:3f57:fefe",  # Teredo, client 192.168.1.1
    "2001:0:4136:e378:8000:63bf:f7f7:fbfb",  # Teredo, public client: all of 2001::/23 is refused
    "2001:20::1",  # ORCHIDv2: globally reachable per IANA (and Python 3.13), never a web server
]

# Each was called public by the is_global classifier on Python 3.11.
FINDINGS = [
    "192.0.0.8",  # IPv4 dummy address
    "192.0.0.9",  # PCP anycast
    "192.0.0.10",  # TURN anycast
    "192.0.0.11",
    "192.0.0.255",
    "::ffff:192.0.0.8",  # and the same in IPv4-mapped, NAT64 and 6to4 form
    "::ffff:192.0.0.255",
    "64:ff9b::c000:8",
    "64:ff9b::c000:ff",
    "2002:c000:8::",
    "2002:c000:ff::1",
    "::ffff:0:10.0.0.1",  # IPv4-translated
    "::ffff:0:169.254.169.254",
    "::ffff:0:127.0.0.1",
    "::ffff:0:8.8.8.8",  # even with a public IPv4: only a local SIIT translator routes these
    "200::1",  # reserved by the IETF, outside 2000::/3
    "400::1",
    "800::1",
    "1000::1",
    "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "4000::1",
    "5f00::1",  # SRv6 SIDs
    "6000::1",
    "8000::1",
    "a000::1",
    "c000::1",
    "e000::1",
    "f000::1",
    "f800::1",
    "fe00::1",
    "fec0::1",  # deprecated site-local
    "3fff::1",  # documentation, RFC 9637
    "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff",
    "100:0:0:1::1",  # dummy prefix, RFC 9780
    "2620:4f:8000::42",  # AS112
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.215.14",
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    "2002:808:808::",  # 6to4 of 8.8.8.8
    "::ffff:1.1.1.1",
    "64:ff9b::101:101",
    "2002:101:101:1::1",
]

# Just outside the edges of denied blocks and inside 2000::/3: a block typed too wide fails here.
NEIGHBOURS = [
    "1.0.0.0",
    "9.255.255.255",
    "11.0.0.0",
    "100.63.255.255",
    "100.128.0.0",
    "126.255.255.255",
    "128.0.0.0",
    "169.253.255.255",
    "169.255.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "191.255.255.255",
    "192.0.1.0",
    "192.0.1.255",
    "192.0.3.0",
    "192.31.195.255",
    "192.31.197.0",
    "192.52.192.255",
    "192.52.194.0",
    "192.88.98.255",
    "192.88.100.0",
    "192.167.255.255",
    "192.169.0.0",
    "192.175.47.255",
    "192.175.49.0",
    "198.17.255.255",
    "198.20.0.0",
    "198.51.99.255",
    "198.51.101.0",
    "203.0.112.255",
    "203.0.114.0",
    "223.255.255.255",
    "2000::",
    "2001:200::",
    "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
    "2001:db9::",
    "2003::",
    "2620:4f:7fff:ffff:ffff:ffff:ffff:ffff",
    "2620:4f:8001::",
    "3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "3fff:1000::",
    "3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
]

# The IANA special-purpose registries (plus multicast and the IPv4-translated prefix), written
# out again here so that a block dropped from or mistyped in the table fails a test.
REGISTRY_V4 = [
    "0.0.0.0/8", "0.0.0.0/32", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.0.0/29", "192.0.0.8/32", "192.0.0.9/32",
    "192.0.0.10/32", "192.0.0.170/32", "192.0.0.171/32", "192.0.2.0/24", "192.31.196.0/24",
    "192.52.193.0/24", "192.88.99.0/24", "192.88.99.2/32", "192.168.0.0/16", "192.175.48.0/24",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "255.255.255.255/32",
]  # fmt: skip
REGISTRY_V6 = [
    "::/128", "::1/128", "::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48",
    "100::/64", "100:0:0:1::/64", "2001::/23", "2001::/32", "2001:1::1/128", "2001:1::2/128",
    "2001:1::3/128", "2001:2::/48", "2001:3::/32", "2001:4:112::/48", "2001:10::/28",
    "2001:20::/28", "2001:30::/28", "2001:db8::/32", "2002::/16", "2620:4f:8000::/48",
    "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "ff00::/8",
]  # fmt: skip
# Blocks whose addresses are an IPv4 destination spelled in IPv6: as public as that IPv4 host.
ROUTES_TO_IPV4 = ["::ffff:0:0/96", "64:ff9b::/96", "2002::/16"]

TEREDO_SERVER = IPv4Address("65.54.227.120")
TEREDO_CLIENT = IPv4Address("8.8.4.4")


def teredo(server: IPv4Address, client: IPv4Address) -> IPv6Address:
    return IPv6Address(
        0x2001_0000 << 96 | int(server) << 64 | 0x8000_63BF << 32 | int(client) ^ 0xFFFF_FFFF
    )


# Every IPv6 spelling of an IPv4 address the guard unwraps.
EMBEDDINGS: dict[str, Callable[[IPv4Address], IPv6Address]] = {
    "mapped": lambda ip: IPv6Address(0xFFFF << 32 | int(ip)),
    "nat64": lambda ip: IPv6Address(0x64_FF9B << 96 | int(ip)),
    "6to4": lambda ip: IPv6Address(0x2002 << 112 | int(ip) << 80 | 1),
    "translated": lambda ip: IPv6Address(0xFFFF << 48 | int(ip)),
    "compatible": lambda ip: IPv6Address(int(ip)),
    "local-nat64": lambda ip: IPv6Address(0x64_FF9B_0001 << 80 | int(ip)),
    "teredo-client": lambda ip: teredo(TEREDO_SERVER, ip),
    "teredo-server": lambda ip: teredo(ip, TEREDO_CLIENT),
}
JUDGED_BY_IPV4 = {"mapped", "nat64", "6to4"}


def points(network: str) -> list[IPAddress]:
    """The first, a middle and the last address of ``network``."""
    block = ipaddress.ip_network(network)
    return list(dict.fromkeys([block[0], block[block.num_addresses // 2], block[-1]]))


def cases(networks: list[str]) -> list[object]:
    return [
        pytest.param(address, id=f"{network}:{address}")
        for network in networks
        for address in points(network)
    ]


def embedded_cases(networks: list[str]) -> list[object]:
    return [
        pytest.param(embed(address), id=f"{network}:{address}:{kind}")
        for network in networks
        for address in points(network)
        if isinstance(address, IPv4Address)
        for kind, embed in EMBEDDINGS.items()
    ]


def destination(ip: IPAddress) -> IPAddress:
    """Where a connection to ``ip`` goes, for the forms that stand for an IPv4 host."""
    if isinstance(ip, IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in IPv6Network("64:ff9b::/96"):
            return IPv4Address(int(ip) & 0xFFFF_FFFF)
    return ip


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_not_public(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", FINDINGS)
def test_findings_are_not_public(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", NEIGHBOURS)
def test_neighbours_of_special_blocks_are_public(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


def test_table_lists_the_registries() -> None:
    assert [str(block.network) for block in IPV4_SPECIAL_BLOCKS] == REGISTRY_V4
    assert [str(block.network) for block in IPV6_SPECIAL_BLOCKS] == REGISTRY_V6


DENIED_V6 = [network for network in REGISTRY_V6 if network not in ROUTES_TO_IPV4]


@pytest.mark.parametrize("address", cases(REGISTRY_V4) + cases(DENIED_V6))
def test_special_blocks_are_not_public(address: IPAddress) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize("address", embedded_cases(REGISTRY_V4))
def test_special_ipv4_blocks_are_not_public_in_any_ipv6_form(address: IPv6Address) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize("address", cases(ROUTES_TO_IPV4))
def test_ipv4_destinations_in_ipv6_are_judged_by_their_ipv4(address: IPv6Address) -> None:
    embedded = destination(address)
    assert embedded != address
    assert is_public_address(address) == is_public_address(embedded)


def test_embeddings_spell_the_forms_the_guard_unwraps() -> None:
    loopback = IPv4Address("127.0.0.1")
    spelled = {kind: str(embed(loopback)) for kind, embed in EMBEDDINGS.items()}
    assert spelled == {
        "mapped": "::ffff:7f00:1",
        "nat64": "64:ff9b::7f00:1",
        "6to4": "2002:7f00:1::1",
        "translated": "::ffff:0:7f00:1",
        "compatible": "::7f00:1",
        "local-nat64": "64:ff9b:1::7f00:1",
        "teredo-client": "2001:0:4136:e378:8000:63bf:80ff:fffe",
        "teredo-server": "2001:0:7f00:1:8000:63bf:f7f7:fbfb",
    }


def python_calls_special(ip: IPAddress) -> bool:
    flags = [
        ip.is_private,
        ip.is_reserved,
        ip.is_loopback,
        ip.is_link_local,
        ip.is_multicast,
        ip.is_unspecified,
        not ip.is_global,
    ]
    return any(flags) or (isinstance(ip, IPv6Address) and ip.is_site_local)


# ip_addresses() draws half its examples from Hypothesis's own copy of the IANA registries.
@settings(max_examples=1500, deadline=None)
@given(st.ip_addresses())
def test_what_python_calls_special_is_not_public(ip: IPAddress) -> None:
    if python_calls_special(destination(ip)):
        assert not is_public_address(ip)


@settings(max_examples=500, deadline=None)
@given(st.ip_addresses(v=4))
def test_ipv6_forms_of_an_ipv4_address(ip: IPAddress) -> None:
    assert isinstance(ip, IPv4Address)
    public = is_public_address(ip)
    verdicts = {kind: is_public_address(embed(ip)) for kind, embed in EMBEDDINGS.items()}
    assert verdicts == {kind: public and kind in JUDGED_BY_IPV4 for kind in EMBEDDINGS}


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=0, max_value=2**128 - 1).map(IPv6Address))
def test_ipv6_outside_global_unicast_is_not_public(ip: IPv6Address) -> None:
    if ip not in IPv6Network("2000::/3") and destination(ip) == ip:
        assert not is_public_address(ip)


def test_reasons_name_the_block_and_the_embedded_address() -> None:
    assert why_not_public(ipaddress.ip_address("2001:0:4136:e378:8000:63bf:3f57:fefe")) == [
        "2001::/32 is TEREDO (RFC 4380, RFC 8190)",
        "embeds 192.168.1.1: 192.168.0.0/16 is Private-Use (RFC 1918)",
    ]
    assert why_not_public(ipaddress.ip_address("fe00::1")) == [
        "outside IPv6 global unicast 2000::/3"
    ]
    assert why_not_public(ipaddress.ip_address("8.8.8.8")) == []


# Names the resolver turns into loopback; glibc also reads the integer and hex spellings.
@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "2130706433", "0x7f000001", "::1"])
async def test_backend_refuses_hosts_that_resolve_to_private_addresses(host: str) -> None:
    with pytest.raises(BlockedAddressError):
        await GuardedBackend().connect_tcp(host, 80, timeout=5)


async def test_backend_refusal_says_why() -> None:
    with pytest.raises(BlockedAddressError, match=r"127\.0\.0\.0/8 is Loopback"):
        await GuardedBackend().connect_tcp("127.0.0.1", 80, timeout=5)


async def test_backend_reports_names_that_do_not_resolve() -> None:
    with pytest.raises(DnsError):
        await GuardedBackend().connect_tcp("nonexistent.invalid", 80, timeout=5)


async def test_backend_refuses_unix_sockets() -> None:
    with pytest.raises(BlockedAddressError):
        await GuardedBackend(allow_private=True).connect_unix_socket("/run/docker.sock")


@pytest.fixture
async def listening_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def test_allow_private_connects_to_the_address_it_resolved(listening_port: int) -> None:
    stream = await GuardedBackend(allow_private=True).connect_tcp(
        "localhost", listening_port, timeout=5
    )
    try:
        assert stream.get_extra_info("server_addr") == ("127.0.0.1", listening_port)
    finally:
        await stream.aclose()
