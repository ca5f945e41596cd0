"""fanout (every client on one channel) and per-channel (every client on its own channel)."""

from __future__ import annotations

import asyncio
from typing import Any

from bench import systems
from bench.loadgen import LoadGen
from bench.report import Column, Table, compare
from bench.workloads.common import Context, PublisherPlan, delivery_phase

COLUMNS = [
    Column("system_label", "system"),
    Column("phase", "phase"),
    Column("deliveries_per_s", "deliv/s"),
    Column("p50_ms", "p50 ms", 1),
    Column("p90_ms", "p90 ms", 1),
    Column("p99_ms", "p99 ms", 1),
    Column("max_ms", "max ms", 1),
    Column("lost", "lost"),
    Column("duplicates", "dup"),
    Column("cpu_s_per_1k", "CPU s/1k", 4),
    Column("server_cpu_pct", "CPU %core"),
    Column("redis_cpu_pct", "redis %"),
    Column("peak_rss_mb", "peak RSS MB", 1),
    Column("loadgen_cpu_pct", "loadgen %"),
    Column("other_cpu_pct", "other %"),
    Column("vs_peer", "vs best peer"),
]

SETTLE_S = 1.0


async def _connected(
    ctx: Context, server: systems.Running, clients: int, channel: dict[str, str]
) -> tuple[LoadGen, list[str]]:
    loadgen = await LoadGen(ctx.children, ctx.options.loadgen_procs).start()
    result = await loadgen.connect(
        server.ws_url,
        server.system,
        clients,
        channel=channel,
        concurrency=ctx.options.connect_concurrency,
    )
    notes = []
    if result.failed:
        notes.append(f"{result.failed} of {clients} clients failed to connect: {result.errors}")
    ctx.say(f"  {result.connected} clients subscribed in {result.elapsed_s:.1f} s")
    return loadgen, notes


async def _run_phases(
    ctx: Context,
    system: str,
    clients: int,
    channel: dict[str, str],
    phases: list[tuple[str, PublisherPlan, bool]],
) -> list[dict[str, Any]]:
    rows = []
    async with systems.running(system, ctx.children) as server:
        loadgen, notes = await _connected(ctx, server, clients, channel)
        try:
            for label, plan, paced in phases:
                await asyncio.sleep(SETTLE_S)
                ctx.say(f"  {system}: {label}")
                row = await delivery_phase(
                    ctx, [server], loadgen, label=label, plan=plan, paced=paced
                )
                ctx.say(
                    f"    {row['delivered']:,}/{row['expected']:,} delivered, "
                    f"{row['deliveries_per_s'] or 0:,.0f}/s, p99 {row['p99_ms'] or 0:.1f} ms"
                )
                row["notes"] = notes + row["notes"]
                notes = []
                rows.append(row)
            await loadgen.close_clients()
        finally:
            await loadgen.stop()
    return rows


def _compare(rows: list[dict[str, Any]]) -> None:
    def subject(row: dict[str, Any]) -> bool:
        return row["system"] in systems.OURS

    def peer(row: dict[str, Any]) -> bool:
        return row["system"] in systems.PEERS

    def same_phase(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return bool(a["phase"] == b["phase"])

    for key, label, higher, paced in (
        ("p99_ms", "p99", False, True),
        ("server_cpu_pct", "CPU", False, True),
        ("deliveries_per_s", "deliv/s", True, False),
    ):
        compare(
            [r for r in rows if r["paced"] == paced],
            key=key,
            label=label,
            higher_is_better=higher,
            is_subject=subject,
            is_peer=peer,
            same_group=same_phase,
        )


async def fanout(ctx: Context) -> Table:
    o = ctx.options
    channel = {"mode": "shared", "name": "bench:fan"}
    paced_label = f"{o.fanout_rate:g}/s"
    phases = [
        (
            paced_label,
            PublisherPlan(
                "fanout", o.fanout_rate, 1, channel="bench:fan", count=o.fanout_publications
            ),
            True,
        ),
        (
            "max",
            PublisherPlan(
                "fanout", 0, o.fanout_batch, channel="bench:fan", count=o.fanout_publications
            ),
            False,
        ),
    ]
    rows = []
    for system in o.systems:
        ctx.say(f"fanout: {system}, {o.fanout_clients} clients on one channel")
        for row in await _run_phases(ctx, system, o.fanout_clients, channel, phases):
            row["paced"] = row["phase"] == paced_label
            rows.append(row)
    _compare(rows)
    return Table(
        "fanout",
        f"fanout: {o.fanout_clients:,} clients on one channel, {o.fanout_publications} "
        f"publications at {o.fanout_rate:g}/s, then {o.fanout_publications} as fast as possible",
        COLUMNS,
        rows,
    )


async def per_channel(ctx: Context) -> Table:
    o = ctx.options
    channel = {"mode": "own", "prefix": "bench:c"}
    n = o.channel_clients
    paced_label = f"{o.channel_round_rate:g} rounds/s"
    phases = [
        (
            paced_label,
            PublisherPlan(
                "rounds", o.channel_round_rate, o.channel_batch,
                prefix="bench:c", channels=n, rounds=o.channel_paced_rounds,
            ),
            True,
        ),
        (
            "max",
            PublisherPlan(
                "rounds", 0, o.channel_batch, prefix="bench:c", channels=n, rounds=o.channel_rounds
            ),
            False,
        ),
    ]  # fmt: skip
    rows = []
    for system in o.systems:
        ctx.say(f"per-channel: {system}, {n} clients each on its own channel")
        for row in await _run_phases(ctx, system, n, channel, phases):
            row["paced"] = row["phase"] == paced_label
            rows.append(row)
    _compare(rows)
    return Table(
        "per-channel",
        f"per-channel: {n:,} clients each on its own channel, one publication per channel per "
        f"round; {o.channel_paced_rounds} rounds at {o.channel_round_rate:g}/s, then "
        f"{o.channel_rounds} rounds as fast as possible",
        COLUMNS,
        rows,
    )
