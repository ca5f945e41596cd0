"""asyncio's Event and a message queue without what they cost an idle socket.

``asyncio.Event`` and ``asyncio.Queue`` each build deques (about 700 bytes apiece) when they are
made; a gateway holds one of these per socket or per channel, most of them idle. These build a
list or a future only once something waits or is queued.
"""

from __future__ import annotations

import asyncio

from starlette.types import Message


class Flag:
    """``asyncio.Event``'s set / clear / wait, with no deque of waiters until one waits."""

    __slots__ = ("_set", "_waiters")

    def __init__(self, *, is_set: bool = False) -> None:
        self._set = is_set
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def clear(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self) -> None:
        while not self._set:
            waiter = asyncio.get_running_loop().create_future()
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(waiter)
            await waiter


class Inbox:
    """The app's ``receive()`` messages in order: a list once one arrives, a future only while
    the app waits. A message stays in the list until the app takes it, so a ``receive()`` that
    is cancelled (a timeout) loses nothing."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Message] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, message: Message) -> bool:
        """Queue ``message``; True when it woke the app, which was waiting for it."""
        if self._items is None:
            self._items = []
        self._items.append(message)
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            return False
        waiter.set_result(None)
        return True

    def waiter(self) -> asyncio.Future[None]:
        """What the next message resolves. The reader awaits it itself, not through a coroutine
        of ours, so that an idle socket's wait holds one frame less (about 150 bytes)."""
        self._waiter = asyncio.get_running_loop().create_future()
        return self._waiter

    def pop(self) -> Message:
        """The oldest message (there is one: check ``empty`` first)."""
        items = self._items
        assert items
        message = items.pop(0)
        if not items:  # an idle socket holds no empty list
            self._items = None
        return message
