"""The shard of a channel: fixed vectors (other tools must compute the same placement) and the
consistent-hash property (adding a shard moves about 1/N of the channels, all to the new one)."""

from __future__ import annotations

import pytest

from pushgate.core.sharding import fnv1a_64, jump_hash, shard_of

NAMES = [f"chat:room-{n}" for n in range(10_000)]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", 0xCBF29CE484222325),
        (b"a", 0xAF63DC4C8601EC8C),
        (b"foobar", 0x85944171F73967E8),
    ],
)
def test_fnv1a_64_matches_the_reference_vectors(data: bytes, expected: int) -> None:
    assert fnv1a_64(data) == expected


@pytest.mark.parametrize(
    ("key", "buckets", "expected"),
    [(1, 1, 0), (42, 57, 43), (0xDEAD10CC, 1, 0), (0xDEAD10CC, 666, 361), (256, 1024, 520),
     (0, -10, 0), (0xDEAD10CC, -666, 0)],
)  # fmt: skip
def test_jump_hash_matches_the_reference_vectors(key: int, buckets: int, expected: int) -> None:
    assert jump_hash(key, buckets) == expected


def test_a_channel_name_is_hashed_as_utf8() -> None:
    # The reference implementation's string vector: "中国" over FNV-1a, 10 buckets.
    assert shard_of("中国", 10) == 5


def test_one_shard_or_none_holds_everything() -> None:
    assert {shard_of(name, 1) for name in NAMES} == {0}
    assert {shard_of(name, 0) for name in NAMES} == {0}


@pytest.mark.parametrize("shards", [2, 3, 5, 10])
def test_channels_spread_evenly(shards: int) -> None:
    counts = [0] * shards
    for name in NAMES:
        counts[shard_of(name, shards)] += 1
    expected = len(NAMES) / shards
    assert all(abs(count - expected) < expected * 0.1 for count in counts), counts


@pytest.mark.parametrize("shards", [1, 2, 3, 9])
def test_adding_a_shard_moves_about_one_in_n_and_only_to_the_new_one(shards: int) -> None:
    before = {name: shard_of(name, shards) for name in NAMES}
    after = {name: shard_of(name, shards + 1) for name in NAMES}
    moved = [name for name in NAMES if before[name] != after[name]]
    assert {after[name] for name in moved} <= {shards}  # nothing moves between old shards
    expected = len(NAMES) / (shards + 1)
    assert abs(len(moved) - expected) < expected * 0.1, len(moved)
