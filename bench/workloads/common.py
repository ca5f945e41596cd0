"""What every workload shares: the run's options, its children, and one measured delivery phase."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bench.loadgen import DeliveryStats, LoadGen
from bench.procs import Children, CpuMeter, MachineMeter, memory_kb
from bench.stats import Histogram
from bench.systems import HISTORY_SIZE, HISTORY_TTL, LABELS, Running, wire

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
    storm_clients: int = 5000
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

    @property
    def per_client(self) -> int:
        return self.count if self.mode == "fanout" else self.rounds


async def _start_publisher(ctx: Context, server: Running, phase: int, plan: PublisherPlan) -> Any:
    spec = {
        "system": wire(server.system),
        "redis_url": server.redis.url,
        "phase": phase,
        "history_size": HISTORY_SIZE,
        "history_ttl": HISTORY_TTL,
        **plan.__dict__,
    }
    argv = [sys.executable, "-m", "bench.publisher", json.dumps(spec)]
    child = await ctx.children.start("publisher", argv, pipes=True)
    assert child.process.stdout is not None
    line = await asyncio.wait_for(child.process.stdout.readline(), 60)
    if not line:
        raise RuntimeError(f"publisher did not start:\n{child.log_tail()}")
    return child


async def delivery_phase(
    ctx: Context,
    server: Running,
    loadgen: LoadGen,
    *,
    label: str,
    plan: PublisherPlan,
    paced: bool,
) -> dict[str, Any]:
    """Publish ``plan`` and count what the clients got: one row of a delivery table."""
    phase = ctx.next_phase()
    clients = await loadgen.phase(phase, plan.per_client)
    publisher = await _start_publisher(ctx, server, phase, plan)
    stdin, stdout = publisher.process.stdin, publisher.process.stdout
    assert stdin is not None
    assert stdout is not None
    meters = {
        "server": CpuMeter([server.server_pid]),
        "redis": CpuMeter([server.redis_pid]),
        "loadgen": CpuMeter(loadgen.pids),
    }
    machine = MachineMeter()
    stdin.write(b"go\n")
    await stdin.drain()
    published = asyncio.ensure_future(stdout.readline())
    expected = clients * plan.per_client
    stats = await loadgen.stats()
    last_progress, last_unique = time.monotonic(), -1
    while True:
        await asyncio.sleep(POLL_S)
        stats = await loadgen.stats()
        now = time.monotonic()
        if stats.unique != last_unique:
            last_progress, last_unique = now, stats.unique
        if published.done():
            if stats.unique >= expected or now - last_progress > ctx.options.quiet_s:
                break
        elif now - last_progress > 120:
            break  # the publisher is stuck; report what arrived
    for meter in meters.values():
        meter.stop()
    machine.stop()
    line = await published if published.done() else b""
    summary = json.loads(line) if line.strip() else {}
    await ctx.children.stop(publisher)
    row = _delivery_row(server, label, paced, clients, plan, summary, stats, meters)
    ours = sum(m.cpu_s for m in meters.values()) + summary.get("cpu_s", 0.0)
    foreign_note(row, label, machine, ours, meters["server"].wall_s)
    if not summary:
        row["notes"].append(f"publisher did not finish {label}: {publisher.log_tail(5)}")
    if not server.server.alive:
        row["notes"].append(
            f"{server.system} exited ({server.server.process.returncode}) during {label}: "
            f"{server.server.log_tail(10)}"
        )
    return row


def _delivery_row(
    server: Running,
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
    rss_kb, hwm_kb = memory_kb(server.server_pid)
    return {
        "system": server.system,
        "system_label": LABELS[server.system],
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
        "loadgen_cpu_pct": max(loadgen_pct, default=0.0),
        "loadgen_lag_p99_ms": stats.lag_p99_ms,
        "publisher_cpu_pct": publisher_pct,
        "publish_rate": publisher_rate,
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
    if foreign_pct >= FOREIGN_CPU_PERCENT:
        row["notes"].append(
            f"other processes used {foreign_pct:.0f}% of a core during {label}: noisy numbers"
        )
