"""The SSRF guard: which addresses count as public, and what the backend refuses to dial."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator

import pytest

from worker.netguard import BlockedAddressError, DnsError, GuardedBackend, is_public_address

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
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    "2002:808:808::",  # 6to4 of 8.8.8.8
]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_not_public(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


# Names the resolver turns into loopback; glibc also reads the integer and hex spellings.
@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "2130706433", "0x7f000001", "::1"])
async def test_backend_refuses_hosts_that_resolve_to_private_addresses(host: str) -> None:
    with pytest.raises(BlockedAddressError):
        await GuardedBackend().connect_tcp(host, 80, timeout=5)


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
