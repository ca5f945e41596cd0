"""``/ws/jobs`` sockets opened before their job is submitted (the original prototype's order:
open the socket, then ``PUT /urls/{id}``).

Such a socket is subscribed to the job's channel like any other, so the job's first event,
``queued``, reaches it the moment the job is created; if none has come after
``PUSHGATE_JOB_WAIT_SECONDS`` it is closed with 4404, as an unknown job always was. At most
``PUSHGATE_JOB_WAIT_MAX_SOCKETS`` wait at once per gateway; past that, 4404 at once. With
authentication on, a socket must show the job's subscribe token before anything is looked up
(else 4401 at once: ``channel_access.authorize_job_socket``), so a socket without one neither
waits nor learns whether a job exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class JobWaits:
    """How many sockets of this gateway wait for a job: never more than ``limit``."""

    __slots__ = ("limit", "seconds", "waiting")

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self.waiting = 0

    def enter(self, expire: Callable[[], None]) -> JobWait | None:
        """A wait that calls ``expire`` unless the job arrives in time; None when no socket
        may wait (waiting is off, or ``limit`` sockets already wait)."""
        if self.seconds <= 0 or self.waiting >= self.limit:
            return None
        self.waiting += 1
        return JobWait(self, expire)


class JobWait:
    """One socket waiting for its job: ends once, when it arrives, expires, or the socket goes."""

    __slots__ = ("_expire", "_timer", "_waits")

    def __init__(self, waits: JobWaits, expire: Callable[[], None]) -> None:
        self._waits: JobWaits | None = waits
        self._expire = expire
        self._timer = asyncio.get_running_loop().call_later(waits.seconds, self._expired)

    def end(self) -> None:
        """The job's first event arrived, or the socket is over."""
        if self._waits is not None:
            self._waits.waiting -= 1
            self._waits = None
            self._timer.cancel()

    def _expired(self) -> None:
        if self._waits is not None:
            self.end()
            self._expire()
