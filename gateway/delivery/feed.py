"""One client's view of one channel: history spliced in front of live events, each offset once."""

from __future__ import annotations

from collections.abc import Callable

from pushgate.core.wire import OffsetKey, Publication, parse_offset


class Feed:
    """One client's view of one channel (a hub ``Subscriber``).

    Live events are held back until the history read after subscribing is spliced in front of
    them; from then on each offset passes at most once, in increasing order. When the hub drops
    it (``lost``), ``on_lost`` runs once, after everything passed before: at once when live,
    else right after ``go_live`` (so a client hears of it after its subscribe answer).
    """

    __slots__ = ("_forward", "_held", "_held_limit", "_last", "_lost", "_on_lost", "_overflow")

    def __init__(
        self,
        forward: Callable[[Publication], None],
        *,
        after: OffsetKey | None,
        held_limit: int,
        overflow: Callable[[], None],
        on_lost: Callable[[], None],
    ) -> None:
        self._forward = forward
        self._last = after
        self._held: list[Publication] | None = []
        self._held_limit = held_limit
        self._overflow = overflow
        self._on_lost = on_lost
        self._lost = False

    def deliver(self, publication: Publication) -> None:
        if self._lost:
            return
        if self._held is None:
            self._pass(publication)
        elif len(self._held) < self._held_limit:
            self._held.append(publication)
        else:
            self._overflow()

    def go_live(self, history: list[Publication], *, floor: str | None = None) -> None:
        """Send ``history``, then what was held back; nothing at or below offset ``floor``."""
        held, self._held = self._held or [], None
        if floor:
            key = parse_offset(floor)
            if self._last is None or key > self._last:
                self._last = key
        for publication in history:
            self._pass(publication)
        for publication in held:
            self._pass(publication)
        if self._lost:
            self._on_lost()

    @property
    def is_lost(self) -> bool:
        """Whether the hub dropped it."""
        return self._lost

    def lost(self) -> None:
        if self._lost:
            return
        self._lost = True
        if self._held is None:
            self._on_lost()

    def _pass(self, publication: Publication) -> None:
        if self._last is None or publication.key > self._last:
            self._last = publication.key
            self._forward(publication)
