"""A gateway's Prometheus metrics (names and labels: README, Metrics), in a registry of its own.

Labels stay bounded: a transport, a route template, a method, a status or close code, a
namespace, never a channel name or a request id. The gauges are read when scraped, so keeping
them costs the live path nothing; counters on the delivery path count per batch, not per socket.
Messages sent are counted per frame, so as plain ints (``Tally``) that a collector reads at
scrape time: a Prometheus counter's ``inc`` (a lock, a label lookup) on each of thousands of
sockets per publication would cost the fan-out more than writing the frames.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_SECONDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
TRANSPORTS = ("ws_rpc", "ws_jobs", "sse")


class Tally:
    """A plain count, bumped on the hot path without a lock (one event loop writes it)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class MessagesSent(Collector):
    """``pushgate_messages_sent_total{transport}``: the tallies of every socket's writer, read
    when scraped, so the scrape sees the exact number."""

    def __init__(self) -> None:
        self.tallies = {transport: Tally() for transport in TRANSPORTS}

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "pushgate_messages_sent", "Messages written to clients", labels=["transport"]
        )
        for transport, tally in self.tallies.items():
            family.add_metric([transport], tally.count)
        yield family


class GatewayMetrics:
    """Every metric a gateway exposes on ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge("pushgate_connections", "Open sockets and streams", registry=r)
        self.channels = Gauge("pushgate_channels", "Channels subscribed here", registry=r)
        self.subscriptions = Gauge(
            "pushgate_subscriptions", "Local subscriptions (socket x channel)", registry=r
        )
        self.opened = Counter(
            "pushgate_connections_opened", "Sockets and streams opened", ["transport"], registry=r
        )
        self.closed = Counter(
            "pushgate_connections_closed",
            "Sockets closed, by close code (SSE streams: 1000)",
            ["transport", "code"],
            registry=r,
        )
        self.messages_received = Counter(
            "pushgate_messages_received", "Frames received from clients", ["transport"], registry=r
        )
        self.messages_sent = MessagesSent()
        r.register(self.messages_sent)
        self.deliveries = Counter(
            "pushgate_publications_delivered",
            "Publications handed to local subscribers (one per subscriber)",
            registry=r,
        )
        self.rpc_errors = Counter(
            "pushgate_rpc_errors",
            "JSON-RPC error answers on /ws, by method and code",
            ["method", "code"],
            registry=r,
        )
        self.resumes = Counter(
            "pushgate_resumes", "Subscriptions resumed with since", ["recovered"], registry=r
        )
        self.pubsub_reconnects = Counter(
            "pushgate_pubsub_reconnects", "Pub/sub connection losses", ["shard"], registry=r
        )
        self.pubsub_lag = Histogram(
            "pushgate_pubsub_lag_seconds",
            "From the publication's stream id (Redis time) to its hand-off here",
            buckets=_SECONDS,
            registry=r,
        )
        self.http_requests = Counter(
            "pushgate_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "pushgate_http_request_duration_seconds",
            "HTTP request latency (for /sse: the stream's life)",
            ["route"],
            buckets=_SECONDS,
            registry=r,
        )
        self.jobs_submitted = Counter(
            "pushgate_jobs_submitted", "Jobs created (not repeats)", ["transport"], registry=r
        )

    def sent(self, transport: str) -> Tally:
        """The count of messages sent on ``transport`` (one of ``TRANSPORTS``)."""
        return self.messages_sent.tallies[transport]

    def watch(self, connections: Callable[[], int], channels: Callable[[], int],
              subscriptions: Callable[[], int]) -> None:  # fmt: skip
        """Read the gauges from the objects that know them, at scrape time."""
        self.connections.set_function(connections)
        self.channels.set_function(channels)
        self.subscriptions.set_function(subscriptions)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def serve(self, host: str, port: int) -> WSGIServer:
        """``/metrics`` on a port of its own (a thread); the caller shuts it down."""
        server, _thread = start_http_server(port, host, registry=self.registry)
        return server


def route_templates(routes: list[BaseRoute]) -> dict[object, str]:
    """The path template of each endpoint, so requests are counted by route, not by path."""
    templates: dict[object, str] = {}
    for route in routes:
        if isinstance(route, Route):
            templates[route.endpoint] = route.path
        elif isinstance(route, Mount):
            templates[route.app] = route.path + "/*"
    return templates


def count_http(app: ASGIApp, metrics: GatewayMetrics, templates: dict[object, str]) -> ASGIApp:
    """``app`` with every HTTP request counted by route template, method and status."""

    async def counted(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        status = 500  # what the client gets if the app dies before it starts a response
        began = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_status)
        finally:
            route = templates.get(scope.get("endpoint"), "unmatched")
            metrics.http_requests.labels(route, scope["method"], str(status)).inc()
            metrics.http_duration.labels(route).observe(time.perf_counter() - began)

    return counted


def metrics_endpoint(metrics: GatewayMetrics) -> Callable[[Request], Response]:
    def endpoint(_request: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return endpoint
