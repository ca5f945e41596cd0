"""The splice of history and live events, and the bounded outbox, without sockets."""

from __future__ import annotations

import asyncio

from gateway.outbox import Feed, Outbox
from pushgate.wire import Publication


def pub(offset: str) -> Publication:
    return Publication("c", offset, "1-0", f'{{"n":"{offset}"}}')


def make_feed(
    after: tuple[int, int] | None = None, limit: int = 10
) -> tuple[Feed, list[str], list[bool]]:
    seen: list[str] = []
    overflowed: list[bool] = []
    feed = Feed(
        lambda p: seen.append(p.offset),
        after=after,
        held_limit=limit,
        overflow=lambda: overflowed.append(True),
    )
    return feed, seen, overflowed


def test_live_events_wait_for_history_and_overlap_is_dropped() -> None:
    feed, seen, _ = make_feed()
    feed.deliver(pub("3-0"))  # arrived live while history was being read
    feed.deliver(pub("4-0"))
    assert seen == []
    feed.go_live([pub("1-0"), pub("2-0"), pub("3-0")])
    assert seen == ["1-0", "2-0", "3-0", "4-0"]
    feed.deliver(pub("4-0"))  # a replay after reconnect
    feed.deliver(pub("5-0"))
    assert seen == ["1-0", "2-0", "3-0", "4-0", "5-0"]


def test_since_skips_what_the_client_has() -> None:
    feed, seen, _ = make_feed(after=(2, 0))
    feed.go_live([pub("3-0")])
    feed.deliver(pub("2-0"))
    feed.deliver(pub("10-0"))
    assert seen == ["3-0", "10-0"]


def test_held_events_are_bounded() -> None:
    feed, seen, overflowed = make_feed(limit=2)
    for n in range(3):
        feed.deliver(pub(f"{n + 1}-0"))
    assert overflowed == [True]
    feed.go_live([])
    assert seen == ["1-0", "2-0"]


async def drain(outbox: Outbox) -> list[object]:
    return [outbox._queue.get_nowait() for _ in range(outbox._queue.qsize())]


async def test_outbox_overflow_drops_queue_and_closes_with_slow_consumer() -> None:
    outbox = Outbox(size=2)
    outbox.push("a")
    outbox.push("b")
    outbox.push("c")  # no room: the client is too slow
    assert outbox.closing
    items = await drain(outbox)
    assert len(items) == 1
    assert getattr(items[0], "code", None) == 4408
    outbox.push("d")  # ignored once closing
    assert await drain(outbox) == []


async def test_outbox_finish_closes_after_queued_frames() -> None:
    outbox = Outbox(size=3)
    outbox.push("a")
    outbox.finish(1000, "done")
    items = await drain(outbox)
    assert items[0] == "a"
    assert getattr(items[1], "code", None) == 1000
    await asyncio.sleep(0)
