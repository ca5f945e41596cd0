"""``PUSHGATE_RPC_ROUTES=examples.counter.routes:ROUTES``: state that lives with a connection.

The gateway makes one ``Counter`` for each connection, on its first ``counter.*`` call, and
drops it when the connection closes: a client that reconnects (to this gateway or another)
starts again from 0. State that must outlive a connection belongs in Redis or the app's
database (see ``examples/running_total``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.rpc.context import RpcContext


class Counter:
    """A count of one connection's own: ``counter.add`` and ``counter.get``."""

    def __init__(self, ctx: RpcContext) -> None:
        self.count = 0

    def add(self, n: int | None) -> int:
        """Adds ``n`` (1 when left out); returns the count."""
        if n is not None and (isinstance(n, bool) or not isinstance(n, int)):
            raise TypeError(f"counter.add takes an integer, not {n!r}")
        self.count += 1 if n is None else n
        return self.count

    def get(self, _params: object) -> int:
        return self.count

    def _reset(self, _params: object) -> None:
        """Starts with ``_``: the gateway never lets a client call it."""
        self.count = 0


ROUTES = {"counter": Counter}
