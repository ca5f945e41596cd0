"""The lazy event and inbox (gateway/lazysync.py): asyncio's semantics, nothing built until used."""

from __future__ import annotations

import asyncio

from starlette.types import Message

from gateway.lazysync import Flag, Inbox


async def get(inbox: Inbox) -> Message:
    """What LeanWebSocketProtocol.receive does with its inbox."""
    while inbox.empty():
        await inbox.waiter()
    return inbox.pop()


async def test_flag_wakes_every_waiter_and_survives_a_cancelled_one() -> None:
    flag = Flag()
    assert not flag.is_set()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    waiters[0].cancel()
    flag.set()
    await asyncio.gather(*waiters[1:])
    assert waiters[0].cancelled()
    assert flag.is_set()
    await flag.wait()  # set: returns at once
    flag.clear()
    assert not flag.is_set()


async def test_flag_builds_nothing_until_someone_waits() -> None:
    flag = Flag(is_set=True)
    flag.clear()
    flag.set()
    assert flag._waiters is None


async def test_inbox_keeps_order_and_says_whether_it_woke_the_reader() -> None:
    inbox = Inbox()
    assert inbox._items is None  # nothing until the first message
    assert inbox.put_nowait({"n": 1}) is False  # nobody waiting
    assert await get(inbox) == {"n": 1}
    reader = asyncio.ensure_future(get(inbox))
    await asyncio.sleep(0)
    assert inbox.put_nowait({"n": 2}) is True
    assert inbox.put_nowait({"n": 3}) is False
    assert await reader == {"n": 2}
    assert not inbox.empty()
    assert await get(inbox) == {"n": 3}
    assert inbox.empty()


async def test_a_cancelled_receive_loses_no_message() -> None:
    inbox = Inbox()
    reader = asyncio.ensure_future(get(inbox))
    await asyncio.sleep(0)
    inbox.put_nowait({"n": 1})  # wakes the reader...
    reader.cancel()  # ...which is cancelled before it runs (a timeout firing)
    await asyncio.sleep(0)
    assert reader.cancelled()
    assert await get(inbox) == {"n": 1}
