"""What every workload shares: the run's options, its children, and one measured delivery phase."""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bench.loadgen import DeliveryStats, LoadGen, split
from bench.procs import Child, Children, CpuMeter, MachineMeter, memory_kb
from bench.stats import Histogram
from bench.systems import HISTORY_SIZE, HISTORY_TTL, LABELS, Running, redis_pid, wire

# A load generator or publisher process above this share of one core is the bottleneck.
SATURATED_CPU_PERCENT = 90.0
# ...and so is an event loop that lags this much (p99) while taking deliveries.
SATURATED_LAG_MS = 50.0
# A phase whose publishing took this share of its delivery window was paced by the publisher.
PUBLISHER_BOUND = 0.8
# Other processes using more than this share of a core during a phase make it noisy.
FOREIGN_CPU_PERCENT = 20.0
POLL_S = 0.1


@dataclass
class Options:
    systems: list[str]
    loadgen_procs: int = 1
    connect_concurrency: int = 200
    # fanout
    fanout_clients: int = 2000
    fanout_publications: int = 200
    fanout_rate: float = 20.0
    fanout_batch: int = 50
    # per-channel
    channel_clients: int = 2000
    channel_paced_rounds: int = 10
    channel_round_rate: float = 2.0
    channel_rounds: int = 50
    channel_batch: int = 500
    # idle-memory
    idle_clients: int = 2000
    idle_settle_s: float = 3.0
    # connect-storm
    storm_clients: list[int] = field(default_factory=lambda: [5000, 20000])
    storm_concurrency: int = 500
    # cost-curves
    curve_points: list[int] = field(default_factory=lambda: [2000, 5000, 10000, 20000])
    curve_delivery_points: list[int] = field(default_factory=lambda: [2000, 10000, 20000])
    curve_rounds: int = 2
    # jobs
    jobs_rate: float = 50.0
    jobs_duration_s: float = 20.0
    jobs_max_jobs: int = 500
    jobs_max_concurrency: int = 50
    jobs_workers: list[int] = field(default_factory=lambda: [1, 2])
    # parse
    parse_seconds: float = 5.0
    # scale
    scale_clients: int = 4000
    scale_rounds: int = 25
    scale_batch: int = 500
    scale_publishers: int = 1
    scale_gateways: list[int] = field(default_factory=lambda: [1, 2, 4])
    scale_shards: list[int] = field(default_factory=lambda: [1, 2, 4])
    scale_servers: list[int] = field(default_factory=lambda: [1, 2, 4])
    # phases end when everything arrived, or nothing arrived for this long
    quiet_s: float = 3.0


@dataclass
class Context:
    children: Children
    options: Options
    phase_counter: int = 0

    def next_phase(self) -> int:
        self.phase_counter += 1
        return self.phase_counter

    @staticmethod
    def say(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class PublisherPlan:
    """What bench.publisher should send in one phase (see its Spec)."""

    mode: str
    rate: float
    batch: int
    channel: str = ""
    count: int = 0
    prefix: str = ""
    channels: int = 0
    rounds: int = 0
    first: int = 0  # rounds: the channels are prefix<first> .. prefix<first + channels - 1>

    @property
    def per_client(self) -> int:
        return self.count if self.mode == "fanout" else self.rounds

    def shares(self, publishers: int) -> list[PublisherPlan]:
        """This plan split over ``publishers`` processes, each taking a slice of the channels."""
        if publishers == 1:
            return [self]
        if self.mode != "rounds":
            raise ValueError("only a rounds plan splits over publishers")
        return [
            replace(self, first=self.first + first, channels=count)
            for first, count in split(self.channels, publishers)
        ]


def merge_summaries(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One summary for publishers that ran side by side ({} unless every one finished)."""
    if not parts or not all(parts):
        return {}
    firsts = [p["first_send_ms"] for p in parts if p["first_send_ms"] is not None]
    receivers = [p["receivers"] for p in parts]
    return {
        "published": sum(p["published"] for p in parts),
        "first_send_ms": min(firsts) if firsts else None,
        "last_send_ms": max(p["last_send_ms"] for p in parts),
        "elapsed_s": max(p["elapsed_s"] for p in parts),
        "cpu_s": sum(p["cpu_s"] for p in parts),  # publisher CPU %: all of them, of one core
        "behind_ms": max(p["behind_ms"] for p in parts),
        "receivers": None if None in receivers else sum(receivers),
    }


class Publishers:
    """The bench.publisher processes of one phase: started and ready, then told to go at once."""

    def __init__(self, children: list[Child]) -> None:
        self.children = children
        self._summaries: list[asyncio.Future[bytes]] = []

    @classmethod
    async def start(
        cls, ctx: Context, server: Running, phase: int, plans: list[PublisherPlan]
    ) -> Publishers:
        spec = {
            "system": wire(server.system),
            "redis_urls": [broker.url for broker in server.brokers],
            "phase": phase,
            "history_size": HISTORY_SIZE,
            "history_ttl": HISTORY_TTL,
        }
        children = []
        for plan in plans:
            argv = [sys.executable, "-m", "bench.publisher", json.dumps({**spec, **plan.__dict__})]
            children.append(await ctx.children.start("publisher", argv, pipes=True))
        for child in children:
            assert child.process.stdout is not None
            line = await asyncio.wait_for(child.process.stdout.readline(), 60)
            if not line:
                raise RuntimeError(f"publisher did not start:\n{child.log_tail()}")
        return cls(children)

    async def go(self) -> None:
        for child in self.children:
            assert child.process.stdin is not None
            child.process.stdin.write(b"go\n")
        for child in self.children:
            assert child.process.stdin is not None
            assert child.process.stdout is not None
            await child.process.stdin.drain()
            self._summaries.append(asyncio.ensure_future(child.process.stdout.readline()))

    def done(self) -> bool:
        return all(summary.done() for summary in self._summaries)

    async def stop(self, ctx: Context) -> dict[str, Any]:
        """The merged summary of those that finished ({} unless all did); all stopped."""
        lines = [await s if s.done() else b"" for s in self._summaries]
        for child in self.children:
            await ctx.children.stop(child)
        return merge_summaries([json.loads(line) if line.strip() else {} for line in lines])

    def log_tail(self) -> str:
        return "\n".join(child.log_tail(5) for child in self.children)


async def delivery_phase(
    ctx: Context,
    servers: Sequence[Running],
    loadgen: LoadGen,
    *,
    label: str,
    plan: PublisherPlan,
    paced: bool,
    publishers: int = 1,
) -> dict[str, Any]:
    """Publish ``plan`` and count what the clients got: one row of a delivery table. The
    servers are processes of one system on the same Redis servers; the server columns add
    them up, the Redis ones add up the shards (``redis_cpu_pct_per_shard`` keeps each).
    With ``publishers`` above 1, that many processes share the plan's channels."""
    phase = ctx.next_phase()
    clients = await loadgen.phase(phase, plan.per_client)
    publisher = await Publishers.start(ctx, servers[0], phase, plan.shares(publishers))
    meters = {
        "server": CpuMeter([server.server_pid for server in servers]),
        "redis": CpuMeter([redis_pid(broker) for broker in servers[0].brokers]),
        "loadgen": CpuMeter(loadgen.pids),
    }
    machine = MachineMeter()
    await publisher.go()
    expected = clients * plan.per_client
    stats = await loadgen.stats()
    last_progress, last_unique = time.monotonic(), -1
    while True:
        await asyncio.sleep(POLL_S)
        stats = await loadgen.stats()
        now = time.monotonic()
        if stats.unique != last_unique:
            last_progress, last_unique = now, stats.unique
        if publisher.done():
            if stats.unique >= expected or now - last_progress > ctx.options.quiet_s:
                break
        elif now - last_progress > 120:
            break  # the publisher is stuck; report what arrived
    for meter in meters.values():
        meter.stop()
    machine.stop()
    summary = await publisher.stop(ctx)
    row = _delivery_row(servers, label, paced, clients, plan, summary, stats, meters)
    ours = sum(m.cpu_s for m in meters.values()) + summary.get("cpu_s", 0.0)
    foreign_note(row, label, machine, ours, meters["server"].wall_s)
    if not summary:
        row["notes"].append(f"publisher did not finish {label}: {publisher.log_tail()}")
    for server in servers:
        if not server.server.alive:
            row["notes"].append(
                f"{server.system} exited ({server.server.process.returncode}) during {label}: "
                f"{server.server.log_tail(10)}"
            )
    return row


def _delivery_row(
    servers: Sequence[Running],
    label: str,
    paced: bool,
    clients: int,
    plan: PublisherPlan,
    summary: dict[str, Any],
    stats: DeliveryStats,
    meters: dict[str, CpuMeter],
) -> dict[str, Any]:
    per_client = plan.per_client
    if plan.mode == "fanout":
        per_client = min(per_client, summary.get("published", 0))
    else:
        per_client = min(per_client, summary.get("published", 0) // max(1, plan.channels))
    expected = clients * per_client
    first_send = summary.get("first_send_ms")
    window_s = (
        (stats.last_recv_ms - first_send) / 1000
        if first_send is not None and stats.last_recv_ms is not None
        else 0.0
    )
    server_cpu = meters["server"]
    latency: Histogram = stats.latency
    notes: list[str] = []
    loadgen_pct = meters["loadgen"].per_process_percent()
    if max(loadgen_pct, default=0) >= SATURATED_CPU_PERCENT or stats.lag_p99_ms >= SATURATED_LAG_MS:
        notes.append(
            f"load generator saturated in {label} (CPU {max(loadgen_pct):.0f}% of a core, "
            f"event-loop lag p99 {stats.lag_p99_ms:.0f} ms): it may have set the pace"
        )
    publisher_pct = 100 * summary.get("cpu_s", 0) / max(summary.get("elapsed_s", 0), 1e-9)
    publisher_rate = summary.get("published", 0) / max(summary.get("elapsed_s", 0), 1e-9)
    publishing_s = summary.get("elapsed_s", 0.0)
    if not paced and window_s > 0 and publishing_s >= PUBLISHER_BOUND * window_s:
        notes.append(
            f"the publisher set the pace in {label}: publishing took {publishing_s:.2f} of "
            f"{window_s:.2f} s ({publisher_rate:,.0f}/s, publisher CPU {publisher_pct:.0f}%), "
            "so deliveries/s is a lower bound"
        )
    if paced and summary.get("behind_ms", 0) > 100:
        notes.append(f"publisher fell {summary['behind_ms']:.0f} ms behind its schedule")
    if stats.closed:
        notes.append(f"{stats.closed} clients closed by the server in {label}: {stats.close_codes}")
    if stats.stray or stats.negative:
        notes.append(f"{stats.stray} stray frames, {stats.negative} negative latencies in {label}")
    memory = [memory_kb(server.server_pid) for server in servers]
    rss_kb, hwm_kb = sum(m[0] for m in memory), sum(m[1] for m in memory)
    system = servers[0].system
    return {
        "system": system,
        "system_label": LABELS[system],
        "phase": label,
        "clients": clients,
        "publications": summary.get("published", 0),
        "expected": expected,
        "delivered": stats.unique,
        "deliveries_per_s": stats.unique / window_s if window_s > 0 else None,
        **latency.summary(),
        "lost": max(0, expected - stats.unique),
        "duplicates": stats.dups,
        "server_cpu_s": server_cpu.cpu_s,
        "server_cpu_pct": server_cpu.percent_of_core,
        "cpu_s_per_1k": 1000 * server_cpu.cpu_s / stats.unique if stats.unique else None,
        "redis_cpu_pct": meters["redis"].percent_of_core,
        "redis_cpu_pct_per_shard": meters["redis"].per_process_percent(),
        "redis_cpu_s": meters["redis"].cpu_s,
        "loadgen_cpu_pct": max(loadgen_pct, default=0.0),
        "loadgen_lag_p99_ms": stats.lag_p99_ms,
        "publisher_cpu_pct": publisher_pct,
        "publish_rate": publisher_rate,
        "receivers": summary.get("receivers"),
        "rss_mb": rss_kb / 1024,
        "peak_rss_mb": hwm_kb / 1024,
        "window_s": window_s,
        "notes": notes,
    }


def foreign_note(
    row: dict[str, Any], label: str, machine: MachineMeter, ours_s: float, wall_s: float
) -> None:
    """Record how much CPU processes outside the run used during a phase; note it when high."""
    foreign_pct = 100 * max(0.0, machine.cpu_s - ours_s) / wall_s if wall_s > 0 else 0.0
    row["other_cpu_pct"] = foreign_pct
    row["machine_cpu_pct"] = 100 * machine.cpu_s / wall_s if wall_s > 0 else 0.0
    if foreign_pct >= FOREIGN_CPU_PERCENT:
        row["notes"].append(
            f"other processes used {foreign_pct:.0f}% of a core during {label}: noisy numbers"
        )


# Descriptors a server needs beside its clients' (Redis, listeners, logs, imports: a gateway
# holds about 30).
FD_HEADROOM = 150


def fd_capped(wanted: list[int], notes: list[str]) -> list[int]:
    """``wanted`` client counts, those above what one process's file-descriptor limit allows
    lowered to it (with a note)."""
    cap = resource.getrlimit(resource.RLIMIT_NOFILE)[0] - FD_HEADROOM
    counts = sorted({min(n, cap) for n in wanted})
    if max(wanted) > cap:
        notes.append(
            f"counts above {cap:,} lowered to it: the file-descriptor limit allows no more"
        )
    return counts
