"""cost-curves: what connections and deliveries cost as one server grows towards 20,000 clients.

One server per system; clients join in steps, each subscribed to a channel of its own, until
each connection point. At every point: RSS per connection (growth since before the first client
over all connected), and the server CPU per connection of the step that led there. At each
delivery point: one publication per channel per round, and the server CPU per delivery.
Points above what the file-descriptor limit allows are lowered to it, with a note.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench import systems
from bench.loadgen import LoadGen
from bench.procs import CpuMeter, memory_kb
from bench.report import Column, Table
from bench.workloads.common import Context, PublisherPlan, delivery_phase, fd_capped

PREFIX = "bench:curve"
WARM_UP_CLIENTS = 50
SETTLE_S = 1.0


async def _rows(ctx: Context, system: str, points: list[int], deliver: set[int]) -> list[Any]:
    o = ctx.options
    rows = []
    async with systems.running(system, ctx.children) as server:
        loadgen = await LoadGen(ctx.children, o.loadgen_procs).start()
        try:
            warm = {"mode": "own", "prefix": "bench:warm"}
            await loadgen.connect(
                server.ws_url, system, WARM_UP_CLIENTS, channel=warm, concurrency=50
            )
            await loadgen.close_clients()
            await asyncio.sleep(SETTLE_S)
            base_kb, _ = memory_kb(server.server_pid)
            connected = 0
            for point in points:
                row = await _step(ctx, server, loadgen, connected, point, base_kb)
                connected = row["connected"]
                if point in deliver:
                    await _deliver(ctx, server, loadgen, row, point)
                ctx.say(
                    f"  {point:,}: {row['kb_per_conn']:.1f} kB/conn, "
                    f"{row['cpu_ms_per_conn']:.3f} ms CPU/conn"
                )
                rows.append(row)
            await loadgen.close_clients()
        finally:
            await loadgen.stop()
    return rows


async def _step(
    ctx: Context, server: systems.Running, loadgen: LoadGen, have: int, point: int, base_kb: int
) -> dict[str, Any]:
    """Connect clients ``have`` .. ``point``; the row of ``point``."""
    cpu = CpuMeter([server.server_pid])
    result = await loadgen.connect(
        server.ws_url,
        server.system,
        point - have,
        channel={"mode": "own", "prefix": PREFIX},
        concurrency=ctx.options.storm_concurrency,
        first=have,
    )
    cpu.stop()
    await asyncio.sleep(SETTLE_S)
    rss_kb, _ = memory_kb(server.server_pid)
    connected = have + result.connected
    notes = [f"{result.failed} clients failed: {result.errors}"] if result.failed else []
    return {
        "system": server.system,
        "system_label": systems.LABELS[server.system],
        "clients": point,
        "connected": connected,
        "step_conn_per_s": result.rate,
        "cpu_ms_per_conn": 1000 * cpu.cpu_s / max(1, result.connected),
        "rss_mb": rss_kb / 1024,
        "kb_per_conn": (rss_kb - base_kb) / max(1, connected),
        "notes": notes,
    }


async def _deliver(
    ctx: Context, server: systems.Running, loadgen: LoadGen, row: dict[str, Any], point: int
) -> None:
    rounds = ctx.options.curve_rounds
    plan = PublisherPlan("rounds", 0, 500, prefix=PREFIX, channels=point, rounds=rounds)
    label = f"{point:,} subscribers"
    phase = await delivery_phase(ctx, [server], loadgen, label=label, plan=plan, paced=False)
    delivered = phase["delivered"]
    row["delivered"] = delivered
    row["lost"] = phase["lost"]
    row["deliveries_per_s"] = phase["deliveries_per_s"]
    row["cpu_us_per_delivery"] = 1e6 * phase["server_cpu_s"] / delivered if delivered else None
    row["notes"] += [n for n in phase["notes"] if "saturated" not in n]


async def cost_curves(ctx: Context) -> Table:
    o = ctx.options
    notes: list[str] = []
    points = fd_capped(o.curve_points, notes)
    deliver = set(fd_capped(o.curve_delivery_points, []))
    rows = []
    for system in o.systems:
        if system == systems.BROADCASTER:
            continue  # far behind at 2,000 already (idle-memory, connect-storm)
        ctx.say(f"cost-curves: {system}, {', '.join(f'{p:,}' for p in points)} clients")
        rows += await _rows(ctx, system, points, deliver)
    columns = [
        Column("system_label", "system"),
        Column("clients", "clients"),
        Column("connected", "connected"),
        Column("rss_mb", "RSS MB", 1),
        Column("kb_per_conn", "kB/conn", 1),
        Column("step_conn_per_s", "step conn/s"),
        Column("cpu_ms_per_conn", "CPU ms/conn", 3),
        Column("delivered", "delivered"),
        Column("lost", "lost"),
        Column("deliveries_per_s", "deliveries/s"),
        Column("cpu_us_per_delivery", "CPU us/delivery", 1),
    ]
    title = (
        "cost-curves: one server, clients joining in steps (each on its own channel, "
        f"{o.storm_concurrency} handshakes in flight); RSS per connection since before the first "
        "client, CPU per connection of the step, and at the delivery points "
        f"{o.curve_rounds} publications per channel, as fast as possible"
    )
    return Table("cost-curves", title, columns, rows, notes)
