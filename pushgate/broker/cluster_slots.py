"""Redis Cluster's slot arithmetic and topology replies, as pure functions.

API:

- ``key_slot(key)``: the hash slot (0..16383) of a key or sharded channel name, hash tags
  included, as ``CLUSTER KEYSLOT`` answers (CRC16/XMODEM of the key, or of the part between
  the first ``{`` and the next ``}`` when that part is not empty, modulo 16384).
- ``SlotMap``: which master owns each slot, by ``host:port``; built by ``parse_cluster_shards``
  (a ``CLUSTER SHARDS`` reply, Redis >= 7) or ``parse_cluster_slots`` (``CLUSTER SLOTS``), as
  decoded by hiredis (strings, integers and nested lists); ``moved`` patches one slot after a
  redirect.
- ``parse_redirect(message)``: a ``MOVED <slot> <host:port>`` / ``ASK ...`` error as a
  ``Redirect``, None for any other error.

Every key of one pushgate channel carries the channel as its hash tag (see ``keys``), so a
channel's history, meta, idempotency keys and its sharded pub/sub name share one slot.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

SLOTS = 16384


def _crc16_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_TABLE = _crc16_table()


def crc16(data: bytes) -> int:
    """CRC16/XMODEM (polynomial 0x1021, initial 0), the checksum of the cluster spec."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc


def hash_tag(key: bytes) -> bytes:
    """The part of ``key`` that is hashed: its hash tag when it has a non-empty one."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def key_slot(key: str | bytes) -> int:
    raw = key.encode() if isinstance(key, str) else key
    return crc16(hash_tag(raw)) % SLOTS


@dataclass(frozen=True, slots=True)
class Redirect:
    """A cluster redirect: ``MOVED`` (the slot has a new owner) or ``ASK`` (one command only,
    while the slot migrates). ``host`` is "" when Redis does not know the endpoint: the node
    that sent the error is meant."""

    kind: Literal["MOVED", "ASK"]
    slot: int
    host: str
    port: int

    def address(self, sender_host: str) -> str:
        return f"{self.host or sender_host}:{self.port}"


def parse_redirect(message: str) -> Redirect | None:
    parts = message.split()
    if len(parts) != 3 or parts[0] not in ("MOVED", "ASK"):
        return None
    host, _, port = parts[2].rpartition(":")
    kind: Literal["MOVED", "ASK"] = "MOVED" if parts[0] == "MOVED" else "ASK"
    return Redirect(kind, int(parts[1]), host, int(port))


class SlotMap:
    """The master owning each slot (``host:port``, or None for an uncovered slot)."""

    __slots__ = ("_owners",)

    def __init__(self, ranges: Iterable[tuple[int, int, str]]) -> None:
        owners: list[str | None] = [None] * SLOTS
        for first, last, address in ranges:
            owners[first : last + 1] = [address] * (last - first + 1)
        self._owners = owners

    def owner(self, slot: int) -> str | None:
        return self._owners[slot]

    def owner_of(self, key: str | bytes) -> str | None:
        return self._owners[key_slot(key)]

    def masters(self) -> set[str]:
        return {address for address in self._owners if address is not None}

    def moved(self, slot: int, address: str) -> None:
        """Record what a ``MOVED`` said, until the next full map."""
        self._owners[slot] = address


def _pairs(flat: Sequence[Any]) -> dict[str, Any]:
    return {str(flat[i]): flat[i + 1] for i in range(0, len(flat) - 1, 2)}


def parse_cluster_shards(reply: Sequence[Any]) -> SlotMap:
    """``CLUSTER SHARDS``: per shard, its slot ranges and its nodes; the master that is not
    marked failed serves them. A shard whose only master failed keeps it as owner until a
    replica takes over: its slots are down, not gone (readiness names it, subscribes to its
    channels are refused, its connection is retried), as ``CLUSTER SLOTS`` shows them."""
    ranges = []
    for shard in reply:
        fields = _pairs(shard)
        nodes = (_pairs(raw) for raw in fields["nodes"])
        masters = [node for node in nodes if node.get("role") == "master"]
        masters.sort(key=lambda node: node.get("health") == "fail")  # a live one first
        if not masters:
            continue
        node = masters[0]
        host = node.get("endpoint") or node.get("ip")
        if not host or host == "?":
            host = node["ip"]
        address = f"{host}:{node.get('port', node.get('tls-port'))}"
        bounds = fields["slots"]
        ranges += [(int(bounds[i]), int(bounds[i + 1]), address) for i in range(0, len(bounds), 2)]
    return SlotMap(ranges)


def parse_cluster_slots(reply: Sequence[Any]) -> SlotMap:
    """``CLUSTER SLOTS``: per range, its first and last slot, then its master, then replicas."""
    return SlotMap(
        (int(entry[0]), int(entry[1]), f"{entry[2][0]}:{entry[2][1]}") for entry in reply
    )
