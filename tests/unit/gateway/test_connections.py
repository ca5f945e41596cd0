"""The registry of open sockets and streams, and the drain's schedule, without sockets."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.delivery.connections import DRAIN_CODE, Connections, spread


class Recorder:
    """A close callback that remembers each call and when it came."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str, float]] = []

    def __call__(self, code: int, reason: str) -> None:
        self.calls.append((code, reason, asyncio.get_running_loop().time()))


@given(st.integers(min_value=1, max_value=500), st.floats(min_value=0.1, max_value=60))
def test_spread_puts_one_moment_in_each_slot(count: int, window: float) -> None:
    moments = spread(count, window)
    slot = window / count
    assert len(moments) == count
    assert all(index * slot <= m < (index + 1) * slot + 1e-9 for index, m in enumerate(moments))


def test_spread_is_even_in_every_tenth_and_jittered() -> None:
    moments = spread(200, 2.0)
    tenths = [sum(1 for m in moments if k * 0.2 <= m < (k + 1) * 0.2) for k in range(10)]
    assert tenths == [20] * 10
    assert spread(200, 2.0) != moments  # another gateway does not close on the same schedule
    assert spread(0, 10.0) == []


def test_the_cap_counts_only_capped_entries() -> None:
    connections = Connections(limit=2)
    first = connections.try_enter(Recorder())
    assert first is not None
    assert connections.try_enter(Recorder()) is not None
    assert connections.try_enter(Recorder()) is None
    connections.register(Recorder())  # a job socket or stream is not capped
    assert len(connections) == 3
    connections.leave(first)
    connections.leave(first)  # leaving twice counts once
    assert connections.capped == 1
    assert connections.try_enter(Recorder()) is not None


async def test_drain_closes_each_open_entry_once_within_the_window() -> None:
    connections = Connections(limit=100)
    recorders = [Recorder() for _ in range(20)]
    entries = [connections.register(r) for r in recorders]
    gone = Recorder()
    connections.leave(connections.register(gone))
    loop = asyncio.get_running_loop()
    start = loop.time()
    # A socket that leaves during the drain is not closed again.
    loop.call_later(0.05, connections.leave, entries[0])
    await connections.drain(0.2, rand=lambda: 0.5)
    assert connections.draining
    closed = [r for r in recorders if r.calls]
    assert all(len(r.calls) == 1 and r.calls[0][0] == DRAIN_CODE for r in closed)
    assert 19 <= len(closed) <= 20
    assert not gone.calls
    moments = sorted(r.calls[0][2] - start for r in closed)
    assert moments[-1] < 0.2 + 0.1
    assert moments[-1] - moments[0] > 0.1  # spread out, not all at once


async def test_an_entry_registered_while_draining_is_closed_at_once() -> None:
    connections = Connections(limit=1)
    connections.draining = True
    late = Recorder()
    connections.register(late)
    assert [call[0] for call in late.calls] == [DRAIN_CODE]


@pytest.mark.parametrize("leave", [True, False])
async def test_wait_empty_returns_what_is_left(leave: bool) -> None:
    connections = Connections(limit=10)
    entries = [connections.register(Recorder()) for _ in range(3)]
    if leave:
        loop = asyncio.get_running_loop()
        for entry, delay in zip(entries, itertools.count(0.01, 0.01), strict=False):
            loop.call_later(delay, connections.leave, entry)
    assert await connections.wait_empty(0.5 if leave else 0.05) == (0 if leave else 3)
