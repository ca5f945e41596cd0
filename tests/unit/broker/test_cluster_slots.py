"""Slot arithmetic against answers of a real server, and the topology/redirect parsers against
replies captured from a real three-master cluster (Redis 7.0.15)."""

from __future__ import annotations

from typing import Any

import pytest

from pushgate.broker import keys
from pushgate.broker.cluster_slots import (
    SLOTS,
    Redirect,
    SlotMap,
    key_slot,
    parse_cluster_shards,
    parse_cluster_slots,
    parse_redirect,
)

# `CLUSTER KEYSLOT <key>` answers of redis-server 7.0.15.
KEYSLOT_ANSWERS = {
    "": 0,
    "a": 15495,
    "foo": 12182,
    "bar": 5061,
    "123456789": 12739,
    "{user1000}.following": 3443,
    "{user1000}.followers": 3443,
    "foo{}{bar}": 8363,  # an empty tag hashes the whole key
    "foo{{bar}}zap": 4015,  # the tag is "{bar"
    "foo{bar}{zap}": 5061,  # only the first tag counts
    "{}": 15257,
    "pushgate:{chat:room1}": 13607,
    "pushgate:{chat:room1}:history": 13607,
    "pushgate:{job:abc}:job": 7812,
    "héllo": 11061,  # hashed as UTF-8 bytes
    "{": 4092,
    "}{a}": 15495,
    "a{b": 13340,
}


@pytest.mark.parametrize(("key", "slot"), KEYSLOT_ANSWERS.items())
def test_key_slot_matches_redis(key: str, slot: int) -> None:
    assert key_slot(key) == slot
    assert key_slot(key.encode()) == slot


@pytest.mark.parametrize("channel", ["chat:room1", "job:abc", "feed:{odd}", "x"])
def test_every_key_of_a_channel_shares_its_sharded_channel_slot(channel: str) -> None:
    slot = key_slot(keys.redis_channel(channel))
    assert key_slot(keys.history_key(channel)) == slot
    assert key_slot(keys.meta_key(channel)) == slot
    assert key_slot(keys.idempotency_key(channel, "k{1}")) == slot


def test_a_job_record_shares_its_job_channel_slot() -> None:
    channel = "job:r-42"
    assert key_slot(keys.job_key("r-42")) == key_slot(keys.history_key(channel))


SHARDS_REPLY: list[Any] = [
    ["slots", [5461, 10922], "nodes", [
        ["id", "631d", "port", 52353, "ip", "127.0.0.1", "endpoint", "127.0.0.1",
         "role", "master", "replication-offset", 0, "health", "online"],
    ]],
    ["slots", [0, 5460], "nodes", [
        ["id", "711c", "port", 52601, "ip", "127.0.0.1", "endpoint", "127.0.0.1",
         "role", "master", "replication-offset", 0, "health", "online"],
        ["id", "9a9a", "port", 52999, "ip", "127.0.0.1", "endpoint", "127.0.0.1",
         "role", "replica", "replication-offset", 0, "health", "online"],
    ]],
    ["slots", [10923, 16000, 16001, 16383], "nodes", [
        ["id", "68bb", "port", 48853, "ip", "127.0.0.1", "endpoint", "127.0.0.1",
         "role", "master", "replication-offset", 0, "health", "online"],
    ]],
]  # fmt: skip

SLOTS_REPLY = [
    [0, 5460, ["127.0.0.1", 52601, "711c", []], ["127.0.0.1", 52999, "9a9a", []]],
    [5461, 10922, ["127.0.0.1", 52353, "631d", []]],
    [10923, 16383, ["127.0.0.1", 48853, "68bb", []]],
]


@pytest.mark.parametrize(
    "slot_map", [parse_cluster_shards(SHARDS_REPLY), parse_cluster_slots(SLOTS_REPLY)]
)
def test_topology_replies_give_every_slot_its_master(slot_map: SlotMap) -> None:
    assert slot_map.owner(0) == slot_map.owner(5460) == "127.0.0.1:52601"
    assert slot_map.owner(5461) == slot_map.owner(10922) == "127.0.0.1:52353"
    assert slot_map.owner(10923) == slot_map.owner(SLOTS - 1) == "127.0.0.1:48853"
    assert slot_map.masters() == {"127.0.0.1:52601", "127.0.0.1:52353", "127.0.0.1:48853"}
    assert slot_map.owner_of("pushgate:{chat:room1}") == "127.0.0.1:48853"  # slot 13607
    slot_map.moved(13607, "127.0.0.1:52601")
    assert slot_map.owner(13607) == "127.0.0.1:52601"
    assert slot_map.owner(13608) == "127.0.0.1:48853"


def test_a_failed_master_owns_its_slots_until_a_replica_takes_over() -> None:
    node = ["id", "631d", "port", 52353, "ip", "127.0.0.1", "role", "master", "health", "fail"]
    failed = [["slots", [5461, 10922], "nodes", [node]]]
    assert parse_cluster_shards(failed).owner(6000) == "127.0.0.1:52353"  # down, not gone
    promoted = ["id", "77ab", "port", 52400, "ip", "127.0.0.1", "role", "master", "health",
                "online"]  # fmt: skip
    taken_over = [["slots", [5461, 10922], "nodes", [node, promoted]]]
    assert parse_cluster_shards(taken_over).owner(6000) == "127.0.0.1:52400"


def test_redirects() -> None:
    assert parse_redirect("MOVED 3999 127.0.0.1:6381") == Redirect("MOVED", 3999, "127.0.0.1", 6381)
    ask = parse_redirect("ASK 12 :7000")
    assert ask == Redirect("ASK", 12, "", 7000)
    assert ask.address("10.0.0.5") == "10.0.0.5:7000"
    assert parse_redirect("ERR unknown command") is None
    assert parse_redirect("CROSSSLOT Keys in request don't hash to the same slot") is None
