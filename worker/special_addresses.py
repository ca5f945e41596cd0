"""The IANA special-purpose address registries, as data for the SSRF guard (worker/netguard.py).

Transcribed from the IANA IPv4 and IPv6 Special-Purpose Address Registries (as updated in
October 2025), plus the two multicast blocks and the IPv4-translated prefix, which those
registries do not list. Python's ``ipaddress`` keeps its own, older copy of these registries
(3.11 calls 192.0.0.8 and 3fff::1 global), so the guard reads this table instead.

Sub-blocks follow their parent, as in the registry. Several are marked "globally reachable" by
IANA (the PCP, TURN and DNS-SD anycast addresses, AS112, AMT, ORCHIDv2, DETs), and the guard
denies them all the same: each is the address of one network protocol's service or an
identifier that is not a locator, never a web server a user could mean to scrape, so allowing
them would only widen what a submitted URL can reach. They are listed so the block that denied
an address can be named.
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple


class SpecialBlock(NamedTuple):
    """One entry of an IANA special-purpose address registry."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    name: str
    rfc: str


def _block(network: str, name: str, rfc: str) -> SpecialBlock:
    return SpecialBlock(ipaddress.ip_network(network), name, rfc)


IPV4_SPECIAL_BLOCKS: tuple[SpecialBlock, ...] = (
    _block("0.0.0.0/8", '"This network"', "RFC 791, section 3.2"),
    _block("0.0.0.0/32", '"This host on this network"', "RFC 1122, section 3.2.1.3"),
    _block("10.0.0.0/8", "Private-Use", "RFC 1918"),
    _block("100.64.0.0/10", "Shared Address Space", "RFC 6598"),
    _block("127.0.0.0/8", "Loopback", "RFC 1122, section 3.2.1.3"),
    _block("169.254.0.0/16", "Link Local", "RFC 3927"),
    _block("172.16.0.0/12", "Private-Use", "RFC 1918"),
    _block("192.0.0.0/24", "IETF Protocol Assignments", "RFC 6890, section 2.1"),
    _block("192.0.0.0/29", "IPv4 Service Continuity Prefix", "RFC 7335"),
    _block("192.0.0.8/32", "IPv4 dummy address", "RFC 7600"),
    _block("192.0.0.9/32", "Port Control Protocol Anycast", "RFC 7723"),
    _block("192.0.0.10/32", "Traversal Using Relays around NAT Anycast", "RFC 8155"),
    _block("192.0.0.170/32", "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050"),
    _block("192.0.0.171/32", "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050"),
    _block("192.0.2.0/24", "Documentation (TEST-NET-1)", "RFC 5737"),
    _block("192.31.196.0/24", "AS112-v4", "RFC 7535"),
    _block("192.52.193.0/24", "AMT", "RFC 7450"),
    _block("192.88.99.0/24", "Deprecated (6to4 Relay Anycast)", "RFC 7526"),
    _block("192.88.99.2/32", "6a44-relay anycast address", "RFC 6751"),
    _block("192.168.0.0/16", "Private-Use", "RFC 1918"),
    _block("192.175.48.0/24", "Direct Delegation AS112 Service", "RFC 7534"),
    _block("198.18.0.0/15", "Benchmarking", "RFC 2544"),
    _block("198.51.100.0/24", "Documentation (TEST-NET-2)", "RFC 5737"),
    _block("203.0.113.0/24", "Documentation (TEST-NET-3)", "RFC 5737"),
    _block("224.0.0.0/4", "Multicast", "RFC 5771"),
    _block("240.0.0.0/4", "Reserved", "RFC 1112, section 4"),
    _block("255.255.255.255/32", "Limited Broadcast", "RFC 8190, RFC 919 section 7"),
)

IPV6_SPECIAL_BLOCKS: tuple[SpecialBlock, ...] = (
    _block("::/128", "Unspecified Address", "RFC 4291"),
    _block("::1/128", "Loopback Address", "RFC 4291"),
    _block("::ffff:0:0/96", "IPv4-mapped Address", "RFC 4291"),
    # Not in the registry: SIIT's form, dropped by RFC 6145, that no host should resolve to.
    _block("::ffff:0:0:0/96", "IPv4-translated Address", "RFC 2765, section 2.1"),
    _block("64:ff9b::/96", "IPv4-IPv6 Translat.", "RFC 6052"),
    _block("64:ff9b:1::/48", "IPv4-IPv6 Translat. (local use)", "RFC 8215"),
    _block("100::/64", "Discard-Only Address Block", "RFC 6666"),
    _block("100:0:0:1::/64", "Dummy IPv6 Prefix", "RFC 9780"),
    _block("2001::/23", "IETF Protocol Assignments", "RFC 2928"),
    _block("2001::/32", "TEREDO", "RFC 4380, RFC 8190"),
    _block("2001:1::1/128", "Port Control Protocol Anycast", "RFC 7723"),
    _block("2001:1::2/128", "Traversal Using Relays around NAT Anycast", "RFC 8155"),
    _block("2001:1::3/128", "DNS-SD Service Registration Protocol Anycast", "RFC 9665"),
    _block("2001:2::/48", "Benchmarking", "RFC 5180"),
    _block("2001:3::/32", "AMT", "RFC 7450"),
    _block("2001:4:112::/48", "AS112-v6", "RFC 7535"),
    _block("2001:10::/28", "Deprecated (previously ORCHID)", "RFC 4843"),
    _block("2001:20::/28", "ORCHIDv2", "RFC 7343"),
    _block("2001:30::/28", "Drone Remote ID Protocol Entity Tags (DETs) Prefix", "RFC 9374"),
    _block("2001:db8::/32", "Documentation", "RFC 3849"),
    _block("2002::/16", "6to4", "RFC 3056"),
    _block("2620:4f:8000::/48", "Direct Delegation AS112 Service", "RFC 7534"),
    _block("3fff::/20", "Documentation", "RFC 9637"),
    _block("5f00::/16", "Segment Routing (SRv6) SIDs", "RFC 9602"),
    _block("fc00::/7", "Unique-Local", "RFC 4193, RFC 8190"),
    _block("fe80::/10", "Link-Local Unicast", "RFC 4291"),
    _block("ff00::/8", "Multicast", "RFC 4291"),
)

# The IANA IPv6 Address Space registry allocates only this block as global unicast; the rest is
# reserved by the IETF or special (ULA, link-local, multicast) and never reaches a public host.
IPV6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
