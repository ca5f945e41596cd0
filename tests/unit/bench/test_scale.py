"""The scale workload's bookkeeping: publishers sharing a phase's channels, their merged
summary, and where publications went."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench import systems
from bench.publisher import Spec, schedule
from bench.workloads.common import PublisherPlan, merge_summaries
from bench.workloads.scale import Layout, layouts, where_it_went


def _summary(**changes: Any) -> dict[str, Any]:
    base = {"published": 10, "first_send_ms": 5.0, "last_send_ms": 9.0, "elapsed_s": 1.0,
            "cpu_s": 0.5, "behind_ms": 0.0, "receivers": 10}  # fmt: skip
    return {**base, **changes}


def test_publishers_share_every_channel_and_round_exactly_once() -> None:
    plan = PublisherPlan("rounds", 0, 500, prefix="bench:s", channels=10, rounds=3)
    sent: Counter[tuple[str, int]] = Counter()
    for share in plan.shares(3):
        spec = Spec(system="pushgate", redis_urls=["redis://x"], phase=1, **share.__dict__)
        sent.update(item for step in schedule(spec) for item in step)
    assert sent == Counter({(f"bench:s{c}", r): 1 for c in range(10) for r in range(3)})


def test_a_merged_summary_adds_up_and_needs_every_publisher() -> None:
    merged = merge_summaries([_summary(), _summary(first_send_ms=3.0, elapsed_s=2.0)])
    assert (merged["published"], merged["first_send_ms"], merged["elapsed_s"]) == (20, 3.0, 2.0)
    assert merged["receivers"] == 20
    assert merge_summaries([_summary(), _summary(receivers=None)])["receivers"] is None
    assert merge_summaries([_summary(), {}]) == {}


def test_the_grid_is_pushgates_shards_outermost_then_socketio() -> None:
    grid = layouts([systems.PUSHGATE, systems.SOCKETIO], [1, 4], [1, 2], [1, 2])
    assert [(g.system, g.label) for g in grid] == [
        ("pushgate", "1x1"), ("pushgate", "4x1"), ("pushgate", "1x2"), ("pushgate", "4x2"),
        ("socketio", "1x1"), ("socketio", "2x1"),
    ]  # fmt: skip


def test_idle_publications_come_from_redis_and_the_servers() -> None:
    socketio = {"publications": 100, "receivers": 400}
    counted = {"handed_off": 100.0, "received": 400.0, "no_room": 300.0}
    where_it_went(Layout(systems.SOCKETIO, 4, 1), socketio, None, counted)
    assert (socketio["reach_per_pub"], socketio["idle_per_pub"]) == (4.0, 3.0)
    pushgate: dict[str, Any] = {"publications": 100, "receivers": None}
    counted = {"handed_off": 100.0, "received": 0.0, "no_room": 0.0}
    where_it_went(Layout(systems.PUSHGATE, 4, 2), pushgate, 1.5, counted)
    assert (pushgate["reach_per_pub"], pushgate["idle_per_pub"]) == (1.5, 0.5)
