"""idle-memory (what an idle subscribed connection costs) and connect-storm (how fast clients
can connect and subscribe). Every client subscribes to a channel of its own."""

from __future__ import annotations

import asyncio
from typing import Any

from bench import systems
from bench.loadgen import LoadGen
from bench.procs import CpuMeter, MachineMeter, memory_kb
from bench.report import Column, Table, compare
from bench.workloads.common import (
    SATURATED_CPU_PERCENT,
    Context,
    PublisherPlan,
    delivery_phase,
    fd_capped,
    foreign_note,
)

WARM_UP_CLIENTS = 50


def _is_pushgate(row: dict[str, Any]) -> bool:
    return row["system"] in systems.OURS


def _is_peer(row: dict[str, Any]) -> bool:
    return row["system"] in systems.PEERS


async def _idle_row(ctx: Context, system: str, deflate: bool) -> dict[str, Any]:
    o = ctx.options
    async with systems.running(system, ctx.children, deflate=deflate) as server:
        loadgen = await LoadGen(ctx.children, o.loadgen_procs).start()
        try:
            # Warm up lazily built state (imports, buffers, the first channels) before measuring.
            warm = {"mode": "own", "prefix": "bench:warm"}
            await loadgen.connect(
                server.ws_url,
                system,
                WARM_UP_CLIENTS,
                channel=warm,
                concurrency=50,
                deflate=deflate,
            )
            await loadgen.close_clients()
            await asyncio.sleep(1.0)
            before, _ = memory_kb(server.server_pid)
            redis_before, _ = memory_kb(server.redis_pid)
            result = await loadgen.connect(
                server.ws_url,
                system,
                o.idle_clients,
                channel={"mode": "own", "prefix": "bench:idle"},
                concurrency=o.connect_concurrency,
                deflate=deflate,
            )
            await asyncio.sleep(o.idle_settle_s)
            after, hwm = memory_kb(server.server_pid)
            redis_after, _ = memory_kb(server.redis_pid)
            # Then one publication per channel: every idle client must still get it.
            plan = PublisherPlan(
                "rounds", 0, 500, prefix="bench:idle", channels=o.idle_clients, rounds=1
            )
            check = await delivery_phase(
                ctx, [server], loadgen, label="delivery check", plan=plan, paced=False
            )
            await loadgen.close_clients()
        finally:
            await loadgen.stop()
    notes = []
    if result.failed:
        notes.append(f"{result.failed} clients failed to connect: {result.errors}")
    notes += [n for n in check["notes"] if "saturated" not in n]
    held = max(1, result.connected)
    return {
        "system": system,
        "system_label": systems.LABELS[system],
        "deflate": "on" if deflate else "off",
        "clients": o.idle_clients,
        "connected": result.connected,
        "rss_before_mb": before / 1024,
        "rss_after_mb": after / 1024,
        "peak_rss_mb": hwm / 1024,
        "kb_per_conn": (after - before) / held,
        "redis_kb_per_conn": (redis_after - redis_before) / held,
        "check_delivered": check["delivered"],
        "check_lost": check["lost"],
        "check_duplicates": check["duplicates"],
        "notes": notes,
    }


async def idle_memory(ctx: Context) -> Table:
    o = ctx.options
    rows = []
    for deflate in (False, True):
        for system in o.systems:
            ctx.say(f"idle-memory: {system}, {o.idle_clients} clients, deflate {deflate}")
            row = await _idle_row(ctx, system, deflate)
            ctx.say(f"  {row['kb_per_conn']:.1f} kB per connection")
            rows.append(row)
    compare(
        rows,
        key="kb_per_conn",
        label="kB/conn",
        higher_is_better=False,
        is_subject=_is_pushgate,
        is_peer=_is_peer,
        same_group=lambda a, b: bool(a["deflate"] == b["deflate"]),
    )
    columns = [
        Column("system_label", "system"),
        Column("deflate", "deflate"),
        Column("connected", "connected"),
        Column("rss_before_mb", "RSS before MB", 1),
        Column("rss_after_mb", "RSS after MB", 1),
        Column("kb_per_conn", "kB/conn", 1),
        Column("redis_kb_per_conn", "redis kB/conn", 2),
        Column("check_delivered", "check: got"),
        Column("check_lost", "lost"),
        Column("check_duplicates", "dup"),
        Column("vs_peer", "vs best peer"),
    ]
    title = (
        f"idle-memory: server RSS growth for {o.idle_clients:,} idle connections, each "
        "subscribed to its own channel, without and with permessage-deflate; then one "
        "publication per channel, which every client must get"
    )
    return Table("idle-memory", title, columns, rows)


async def _storm_row(ctx: Context, system: str, clients: int) -> dict[str, Any]:
    o = ctx.options
    async with systems.running(system, ctx.children) as server:
        loadgen = await LoadGen(ctx.children, o.loadgen_procs).start()
        try:
            meters = [
                CpuMeter([server.server_pid]),
                CpuMeter(loadgen.pids),
                CpuMeter([server.redis_pid]),
            ]
            machine = MachineMeter()
            result = await loadgen.connect(
                server.ws_url,
                system,
                clients,
                channel={"mode": "own", "prefix": "bench:storm"},
                concurrency=o.storm_concurrency,
            )
            server_cpu, loadgen_cpu, redis_cpu = (m.stop() for m in meters)
            machine.stop()
            _, hwm = memory_kb(server.server_pid)
            await loadgen.close_clients()
        finally:
            await loadgen.stop()
    notes = []
    if result.failed:
        notes.append(f"{result.failed} clients failed: {result.errors}")
    loadgen_pct = max(loadgen_cpu.per_process_percent(), default=0.0)
    if loadgen_pct >= SATURATED_CPU_PERCENT:
        notes.append(f"load generator saturated ({loadgen_pct:.0f}% of a core)")
    row = {
        "system": system,
        "system_label": systems.LABELS[system],
        "clients": clients,
        "connected": result.connected,
        "failed": result.failed,
        "conn_per_s": result.rate,
        "elapsed_s": result.elapsed_s,
        **{f"handshake_{k}": v for k, v in result.handshake.summary().items()},
        "server_cpu_s": server_cpu.cpu_s,
        "server_cpu_pct": server_cpu.percent_of_core,
        "cpu_ms_per_conn": 1000 * server_cpu.cpu_s / max(1, result.connected),
        "peak_rss_mb": hwm / 1024,
        "loadgen_cpu_pct": loadgen_pct,
        "notes": notes,
    }
    ours = server_cpu.cpu_s + loadgen_cpu.cpu_s + redis_cpu.cpu_s
    foreign_note(row, "the storm", machine, ours, server_cpu.wall_s)
    return row


async def connect_storm(ctx: Context) -> Table:
    """One storm per size and system, each on a fresh server."""
    o = ctx.options
    notes: list[str] = []
    rows = []
    for clients in fd_capped(o.storm_clients, notes):
        for system in o.systems:
            ctx.say(f"connect-storm: {system}, {clients} clients, {o.storm_concurrency} in flight")
            row = await _storm_row(ctx, system, clients)
            ctx.say(f"  {row['connected']:,} subscribed at {row['conn_per_s']:,.0f}/s")
            rows.append(row)
    for key, label, higher in (("conn_per_s", "conn/s", True), ("cpu_ms_per_conn", "CPU", False)):
        compare(
            rows,
            key=key,
            label=label,
            higher_is_better=higher,
            is_subject=_is_pushgate,
            is_peer=_is_peer,
            same_group=lambda a, b: a["clients"] == b["clients"],
        )
    columns = [
        Column("system_label", "system"),
        Column("clients", "clients"),
        Column("connected", "connected"),
        Column("failed", "failed"),
        Column("conn_per_s", "conn/s"),
        Column("handshake_p50_ms", "p50 ms", 1),
        Column("handshake_p90_ms", "p90 ms", 1),
        Column("handshake_p99_ms", "p99 ms", 1),
        Column("handshake_max_ms", "max ms", 1),
        Column("cpu_ms_per_conn", "CPU ms/conn", 3),
        Column("server_cpu_pct", "CPU %core"),
        Column("peak_rss_mb", "peak RSS MB", 1),
        Column("loadgen_cpu_pct", "loadgen %"),
        Column("other_cpu_pct", "other %"),
        Column("vs_peer", "vs best peer"),
    ]
    title = (
        "connect-storm: clients connecting and subscribing (each to its own channel), "
        f"{o.storm_concurrency} handshakes in flight; latency = connect to subscribed"
    )
    return Table("connect-storm", title, columns, rows, notes)
