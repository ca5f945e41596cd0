"""Which shard a channel lives on: jump consistent hash over the channel name's FNV-1a hash.

Pure and fixed (other tools compute the same placement): the 64-bit FNV-1a hash of the name's
UTF-8 bytes, fed to jump consistent hash (Lamping & Veach, "A Fast, Minimal Memory, Consistent
Hash Algorithm", 2014). Going from N to N+1 shards moves about 1/(N+1) of the channels, all of
them to the new shard; nothing moves between the old ones.
"""

from __future__ import annotations

_MASK = (1 << 64) - 1
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_JUMP_MULTIPLIER = 2862933555777941757


def fnv1a_64(data: bytes) -> int:
    """The 64-bit FNV-1a hash of ``data``."""
    value = _FNV_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV_PRIME) & _MASK
    return value


def jump_hash(key: int, buckets: int) -> int:
    """The bucket in ``range(buckets)`` of the 64-bit ``key`` (0 when ``buckets`` < 1)."""
    bucket, candidate = -1, 0
    while candidate < buckets:
        bucket = candidate
        key = (key * _JUMP_MULTIPLIER + 1) & _MASK
        candidate = int((bucket + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return max(bucket, 0)


def shard_of(channel: str, shards: int) -> int:
    """The index of the shard that holds ``channel`` (history, meta, pub/sub, job record)."""
    if shards <= 1:
        return 0
    return jump_hash(fnv1a_64(channel.encode()), shards)
