"""``pushgate gateway``: the app under uvicorn, run from code so that SIGTERM drains it.

On the first SIGTERM or SIGINT the gateway is draining at once: ``/readyz`` answers 503, a new
WebSocket is closed with 1012 right after its handshake, HTTP requests are still served (calls
in flight finish). Every open ``/ws`` and ``/ws/jobs`` socket and ``/sse`` stream is then closed
(1012; a stream just ends) at its own moment of ``PUSHGATE_DRAIN_SECONDS``, evenly spread; then
uvicorn stops and the process exits 0. A second signal stops at once, closing what is left in
the same instant; a third skips the app's own shutdown too. Under plain
``uvicorn gateway.app:app`` SIGTERM is uvicorn's: every socket gets 1012 in the same instant.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from types import FrameType

import uvicorn
from starlette.types import ASGIApp

from gateway.app import create_app
from gateway.delivery.connections import Connections
from gateway.wsprotocol import LeanHttpProtocol, LeanWebSocketProtocol
from pushgate.core.settings import Settings

# uvicorn's own logger, so that the drain's lines read like the rest of the server's.
log = logging.getLogger("uvicorn.error")

# After the drain window: how long closed sockets get to answer the close, then how long uvicorn
# waits for what is left. A gateway exits within drain + both + its lifespan's shutdown.
CLOSE_WAIT_SECONDS = 3.0
SHUTDOWN_TIMEOUT_SECONDS = 3

# ``--ws``: pushgate's own protocol (gateway/wsprotocol.py), or uvicorn's sans-I/O one (what
# ``uvicorn --ws auto`` picks). Both are websockets' sans-I/O ServerProtocol underneath.
WS_PROTOCOLS: dict[str, type[asyncio.Protocol] | str] = {
    "lean": LeanWebSocketProtocol,
    "websockets-sansio": "websockets-sansio",
}


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """uvicorn's options, defaulting to what the deploy files have always passed."""

    host: str = "127.0.0.1"
    port: int = 8000
    # A name of WS_PROTOCOLS: lean costs less per connection (README, "Connection cost").
    ws: str = "lean"
    # Off: deflate costs ~40 kB per idle connection (README).
    ws_per_message_deflate: bool = False
    # Below common proxies' idle timeouts; a peer that stops answering is dropped.
    ws_ping_interval: float = 20.0
    ws_ping_timeout: float = 20.0
    # Addresses whose X-Forwarded-* headers are trusted (None: uvicorn's default, loopback).
    forwarded_allow_ips: str | None = None
    access_log: bool = False
    log_level: str = "info"

    def config(self, app: ASGIApp) -> uvicorn.Config:
        # Each field is named as the uvicorn.Config parameter it sets.
        options = {**dataclasses.asdict(self), "ws": WS_PROTOCOLS[self.ws]}
        # The lean protocol takes the upgrade request as uvicorn's HTTP protocol parsed it.
        http = LeanHttpProtocol if self.ws == "lean" else "auto"
        return uvicorn.Config(
            app, **options, http=http, timeout_graceful_shutdown=SHUTDOWN_TIMEOUT_SECONDS
        )


class DrainingServer(uvicorn.Server):
    """uvicorn's server whose first SIGTERM/SIGINT drains the gateway before it stops, exit 0."""

    def __init__(
        self, config: uvicorn.Config, connections: Connections, drain_seconds: float
    ) -> None:
        super().__init__(config)
        self._connections = connections
        self._drain_seconds = drain_seconds
        self._drain: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler: it only sets flags, which the server's 0.1 s tick acts on. It does not
        # record the signal as uvicorn does (uvicorn re-raises those on the way out, and the
        # default action of SIGTERM would turn our exit 0 into death by signal).
        if self.should_exit:  # a third signal: uvicorn's force quit, no lifespan shutdown
            self.force_exit = True
        elif self._connections.draining:  # a second: stop now, closing what is left at once
            self.should_exit = True
        else:
            self._connections.draining = True  # /readyz answers 503 from here on

    async def on_tick(self, counter: int) -> bool:
        if self._connections.draining and self._drain is None:
            self._drain = asyncio.get_running_loop().create_task(self._drain_then_stop())
        return await super().on_tick(counter)

    async def _drain_then_stop(self) -> None:
        window = self._drain_seconds
        log.info("draining: closing %d connections over %.1f s", len(self._connections), window)
        await self._connections.drain(window)
        left = await self._connections.wait_empty(CLOSE_WAIT_SECONDS)
        if left:
            log.warning("%d connections did not answer the close; uvicorn drops them", left)
        self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._drain is not None:
            self._drain.cancel()
        # What is still open goes now: after a second signal, or when a client did not answer.
        await self._connections.drain(0.0)
        await super().shutdown(sockets)


# Thresholds of the cyclic GC (CPython's defaults are 700, 10, 10). Every connection makes a few
# hundred container objects that live as long as it does, so with the defaults a connect storm
# spent ~40 % of its CPU in collections; a young threshold of 10,000 cut that to a tenth. Full
# collections walk every connection's objects and find nothing there (closed sockets and
# streams leave no cycles: tests/integration/test_wsprotocol.py), so they come ten times less
# often: a 5,000-client storm's CPU per connection fell by about a sixth (README, "Connection
# cost"). CPython also waits for the old generation to grow by a quarter, either way.
GC_YOUNG_THRESHOLD = 10_000
GC_OLDEST_THRESHOLD = 100


def run_gateway(options: ServerOptions, environ: Mapping[str, str]) -> int:
    """Serve until a signal has drained the gateway; returns the exit code."""
    _, older, _ = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, GC_OLDEST_THRESHOLD)
    settings = Settings.from_env(environ)
    connections = Connections(settings.limits.max_connections)
    config = options.config(create_app(settings, connections))
    DrainingServer(config, connections, settings.gateway.drain_seconds).run()
    return 0
