"""The splice of history and live events, and the bounded outbox, without sockets."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.websockets import WebSocket, WebSocketState

from gateway.delivery.feed import Feed
from gateway.delivery.outbox import Outbox
from gateway.metrics import Tally
from pushgate.core.wire import Publication


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
        on_lost=lambda: seen.append("lost"),
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


def test_a_lost_feed_tells_once_after_what_it_passed_and_passes_nothing_more() -> None:
    feed, seen, _ = make_feed()
    feed.deliver(pub("2-0"))
    feed.lost()  # before go_live: told right after the history and what was held
    feed.lost()
    feed.deliver(pub("3-0"))
    assert seen == []
    feed.go_live([pub("1-0")])
    assert seen == ["1-0", "2-0", "lost"]
    live, seen_live, _ = make_feed()
    live.go_live([])
    live.deliver(pub("1-0"))
    live.lost()
    live.deliver(pub("2-0"))
    assert seen_live == ["1-0", "lost"]


class AsgiPeer:
    """The client end of an in-memory ASGI WebSocket: records what the app sends, and can stop
    reading (its sends then block until ``resume``), like a client whose socket is full."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.reading = asyncio.Event()
        self.reading.set()

    async def receive(self) -> dict[str, Any]:
        await asyncio.Event().wait()  # the peer never sends
        raise AssertionError

    async def send(self, message: Any) -> None:
        await self.reading.wait()
        self.sent.append(dict(message))

    def socket(self) -> WebSocket:
        scope = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b""}
        websocket = WebSocket(scope, self.receive, self.send)
        websocket.application_state = WebSocketState.CONNECTED
        return websocket

    @property
    def texts(self) -> list[str]:
        return [m["text"] for m in self.sent if m["type"] == "websocket.send"]

    @property
    def close_codes(self) -> list[int]:
        return [m["code"] for m in self.sent if m["type"] == "websocket.close"]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_outbox_sends_in_order_then_closes_after_queued_frames() -> None:
    peer = AsgiPeer()
    sent = Tally()
    outbox = Outbox(peer.socket(), size=3, send_timeout=5, sent=sent, client="c")
    outbox.push("a")
    outbox.push("b")
    outbox.finish(1000, "done")
    outbox.push("c")  # after finish: dropped
    await settle()
    assert peer.texts == ["a", "b"]
    assert peer.close_codes == [1000]
    assert sent.count == 2  # frames written, not the close


async def test_outbox_overflow_drops_the_queue_and_closes_as_slow_consumer() -> None:
    peer = AsgiPeer()
    peer.reading.clear()
    sent = Tally()
    outbox = Outbox(peer.socket(), size=2, send_timeout=5, sent=sent, client="c")
    outbox.push("a")
    await settle()  # "a" is in flight, blocked on the client
    for frame in "bcd":  # "b" and "c" fill the queue, "d" overflows it
        outbox.push(frame)
    assert outbox.closing
    peer.reading.set()
    await settle()
    assert peer.texts == []  # the stalled send was given up, not finished
    assert peer.close_codes == [4408]
    assert sent.count == 0  # nothing was written


async def test_outbox_abort_interrupts_a_stalled_send() -> None:
    peer = AsgiPeer()
    peer.reading.clear()
    outbox = Outbox(peer.socket(), size=10, send_timeout=60, sent=Tally(), client="c")
    outbox.push("a")
    await settle()  # the writer is now blocked sending "a"
    outbox.abort(4408, "too slow")
    peer.reading.set()
    await settle()
    assert peer.close_codes == [4408]
    await outbox.stop()
