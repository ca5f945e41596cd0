"""scale: deliveries/s as gateway processes and broker shards grow, side by side with Socket.IO.

Every client is on a channel of its own, and each gateway holds an even share of the clients
(each client connects to one gateway directly). pushgate runs each gateways x shards layout on
fresh redis-servers, one per shard (``PUSHGATE_BROKER_URLS``; one shard is the plain
``PUSHGATE_REDIS_URL`` layout); the publisher routes every publication to its channel's shard
(``ShardedStore.publish_many``). Socket.IO runs 1, 2, 4 server processes with the classic
``@socket.io/redis-adapter`` on one Redis. Each layout gets one warm-up round, then the measured
rounds as fast as possible, every channel getting the same number of publications.

Beyond the delivery columns, each row says where publications went, from two witnesses:

- ``reach/pub``: the pub/sub connections Redis handed each publication to. pushgate: from Redis's
  subscription table after the phase (``PUBSUB NUMSUB`` of each channel on its shard, plus
  ``PUBSUB NUMPAT`` counted as matching everything); Socket.IO: what PUBLISH answered.
- ``idle/pub``: how many of those went to a server process with no subscriber for them.
  pushgate: reach minus the publications the gateways handed to a local subscriber (the
  ``pushgate_pubsub_lag_seconds`` count on each gateway's /metrics, one per publication handed
  off; a gateway drops a message for a channel it does not hold without counting it, so Redis is
  the witness of those); Socket.IO: counted by each server's adapter (js/socketio_server.js,
  /stats ``no_room``).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import httpx
from redis.asyncio import Redis

from bench import systems
from bench.loadgen import LoadGen, split
from bench.report import Column, Table
from bench.workloads.common import Context, PublisherPlan, delivery_phase
from pushgate.broker.keys import redis_channel
from pushgate.cli.redis_server import RedisServer
from pushgate.core.sharding import shard_of

PREFIX = "bench:s"
WARM_UP_ROUNDS = 1
SETTLE_S = 1.0
NUMSUB_CHUNK = 1000
SCRAPE_TIMEOUT_S = 10.0
TARGET_SHARD_GAIN = 3.0
# A phase that kept the whole machine this busy (share of all its cores) was capped by it.
MACHINE_BOUND = 0.9
# Per-server counters: publications handed to a local subscriber, and (Socket.IO only)
# everything the adapter took in and the part for rooms nobody on that server is in.
HANDED_OFF, RECEIVED, NO_ROOM = "handed_off", "received", "no_room"
PUSHGATE_HANDED_OFF = "pushgate_pubsub_lag_seconds_count"

COLUMNS = [
    Column("system_label", "system"),
    Column("servers", "procs"),
    Column("shards", "shards"),
    Column("clients", "clients"),
    Column("deliveries_per_s", "deliv/s"),
    Column("vs_base", "vs 1x1"),
    Column("p50_ms", "p50 ms", 1),
    Column("p99_ms", "p99 ms", 1),
    Column("lost", "lost"),
    Column("duplicates", "dup"),
    Column("server_cpu_pct", "procs %core"),
    Column("cpu_s_per_1k", "procs CPU s/1k", 4),
    Column("redis_per_shard", "redis %core per shard"),
    Column("redis_s_per_1k", "redis CPU s/1k", 4),
    Column("reach_per_pub", "reach/pub", 2),
    Column("idle_per_pub", "idle/pub", 2),
    Column("loadgen_cpu_pct", "loadgen %"),
    Column("publisher_cpu_pct", "publisher %"),
    Column("other_cpu_pct", "other %"),
    Column("machine_cpu_pct", "machine %"),
]


@dataclass(frozen=True)
class Layout:
    system: str
    servers: int  # gateway or Socket.IO server processes
    shards: int  # Redis servers (Socket.IO: always one)

    @property
    def label(self) -> str:
        return f"{self.servers}x{self.shards}"


def layouts(systems_chosen: list[str], gateways: list[int], shards: list[int],
            servers: list[int]) -> list[Layout]:  # fmt: skip
    """pushgate's gateways x shards grid (shards outermost), then Socket.IO's server counts."""
    grid = []
    if systems.PUSHGATE in systems_chosen:
        grid += [Layout(systems.PUSHGATE, g, s) for s in shards for g in gateways]
    if systems.SOCKETIO in systems_chosen:
        grid += [Layout(systems.SOCKETIO, n, 1) for n in servers]
    return grid


def _channels(count: int) -> list[str]:
    return [f"{PREFIX}{n}" for n in range(count)]


async def _connect(
    ctx: Context, servers: list[systems.Running], loadgen: LoadGen, clients: int
) -> list[str]:
    """Each server's even share of the clients, each client on its own channel."""
    notes, began = [], time.monotonic()
    for server, (first, count) in zip(servers, split(clients, len(servers)), strict=True):
        result = await loadgen.connect(
            server.ws_url,
            server.system,
            count,
            channel={"mode": "own", "prefix": PREFIX},
            concurrency=ctx.options.connect_concurrency,
            first=first,
        )
        if result.failed:
            notes.append(f"{result.failed} of {count} clients failed to connect: {result.errors}")
    ctx.say(
        f"  {clients} clients over {len(servers)} process(es) in {time.monotonic() - began:.1f} s"
    )
    return notes


def _prometheus_value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise RuntimeError(f"no {name} in the gateway's /metrics")


async def _counters(servers: list[systems.Running]) -> dict[str, float]:
    """The servers' counters, added up (see HANDED_OFF, RECEIVED, NO_ROOM)."""
    total = {HANDED_OFF: 0.0, RECEIVED: 0.0, NO_ROOM: 0.0}
    async with httpx.AsyncClient(timeout=SCRAPE_TIMEOUT_S) as client:
        for server in servers:
            if server.system == systems.PUSHGATE:
                text = (await client.get(f"{server.http_url}/metrics")).text
                total[HANDED_OFF] += _prometheus_value(text, PUSHGATE_HANDED_OFF)
                continue
            counts = json.loads((await client.get(f"{server.http_url}/stats")).text)
            total[RECEIVED] += counts["adapter_messages"]
            total[NO_ROOM] += counts["no_room"]
            total[HANDED_OFF] += counts["adapter_messages"] - counts["no_room"]
    return total


async def pubsub_reach(brokers: list[RedisServer], channels: list[str]) -> float:
    """Pub/sub connections Redis hands one publication to, averaged over ``channels``: the
    channel's subscribers on its shard, plus every pattern subscription there (counted as
    matching everything: an upper bound)."""
    total = 0
    for index, broker in enumerate(brokers):
        mine = [redis_channel(c) for c in channels if shard_of(c, len(brokers)) == index]
        async with Redis.from_url(broker.url) as redis:
            patterns = int(await redis.pubsub_numpat())
            for start in range(0, len(mine), NUMSUB_CHUNK):
                chunk = mine[start : start + NUMSUB_CHUNK]
                counts = await redis.pubsub_numsub(*chunk)
                total += sum(int(n) for _, n in counts) + patterns * len(chunk)
    return total / max(1, len(channels))


def where_it_went(
    layout: Layout, row: dict[str, Any], reach: float | None, counted: dict[str, float]
) -> None:
    """reach/pub and idle/pub of the phase (see the module docstring)."""
    published = row["publications"]
    if not published:
        return
    if layout.system == systems.SOCKETIO:
        reach = row["receivers"] / published if row["receivers"] is not None else None
        row["idle_per_pub"] = counted[NO_ROOM] / published
        row["received_per_pub"] = counted[RECEIVED] / published
    elif reach is not None:
        row["idle_per_pub"] = max(0.0, reach - counted[HANDED_OFF] / published)
    row["reach_per_pub"] = reach
    row["handed_off_per_pub"] = counted[HANDED_OFF] / published


async def _row(ctx: Context, layout: Layout) -> dict[str, Any]:
    o = ctx.options
    n = o.scale_clients
    warm = PublisherPlan("rounds", 0, o.scale_batch, prefix=PREFIX, channels=n,
                         rounds=WARM_UP_ROUNDS)  # fmt: skip
    measured = PublisherPlan("rounds", 0, o.scale_batch, prefix=PREFIX, channels=n,
                             rounds=o.scale_rounds)  # fmt: skip
    async with systems.deployment(
        layout.system, ctx.children, servers=layout.servers, shards=layout.shards
    ) as servers:
        loadgen = await LoadGen(ctx.children, o.loadgen_procs).start()

        async def publish(label: str, plan: PublisherPlan) -> dict[str, Any]:
            return await delivery_phase(ctx, servers, loadgen, label=label, plan=plan,
                                        paced=False, publishers=o.scale_publishers)  # fmt: skip

        try:
            notes = await _connect(ctx, servers, loadgen, n)
            check = await publish("warm-up", warm)
            if check["lost"] or check["duplicates"]:
                notes.append(f"warm-up: {check['lost']} lost, {check['duplicates']} duplicated")
            await asyncio.sleep(SETTLE_S)
            before = await _counters(servers)
            row = await publish(layout.label, measured)
            after = await _counters(servers)
            reach = None
            if layout.system == systems.PUSHGATE:
                reach = await pubsub_reach(servers[0].brokers, _channels(n))
            await loadgen.close_clients()
        finally:
            await loadgen.stop()
    counted = {key: after[key] - before[key] for key in after}
    where_it_went(layout, row, reach, counted)
    row["notes"] = notes + row["notes"]
    deliveries = max(1, row["delivered"])
    row.update(
        servers=layout.servers,
        shards=layout.shards,
        layout=layout.label,
        redis_per_shard=" / ".join(f"{p:.0f}" for p in row["redis_cpu_pct_per_shard"]),
        redis_s_per_1k=1000 * row["redis_cpu_s"] / deliveries,
    )
    return row


def _rows_of(rows: list[dict[str, Any]], system: str) -> dict[tuple[int, int], dict[str, Any]]:
    return {(r["servers"], r["shards"]): r for r in rows if r["system"] == system}


def _compare(rows: list[dict[str, Any]]) -> list[str]:
    """vs 1x1 on each row; notes on the two targets (4 shards >= 3x one shard; Redis CPU per
    delivery flat as gateways grow)."""
    notes = []
    for system in (systems.PUSHGATE, systems.SOCKETIO):
        by_layout = _rows_of(rows, system)
        base = by_layout.get((1, 1), {}).get("deliveries_per_s")
        for row in by_layout.values():
            if base and row["deliveries_per_s"]:
                row["vs_base"] = f"{row['deliveries_per_s'] / base:.2f}x"
        label = systems.LABELS[system]
        shards = sorted({s for _, s in by_layout})
        procs = sorted({g for g, _ in by_layout})
        for g in procs:
            one, most = by_layout.get((g, 1)), by_layout.get((g, shards[-1]))
            if shards[-1] > 1 and one and most and one["deliveries_per_s"]:
                gain = (most["deliveries_per_s"] or 0) / one["deliveries_per_s"]
                verdict = "yes" if gain >= TARGET_SHARD_GAIN else "NO"
                notes.append(
                    f"{label}, {g} procs: {shards[-1]} shards / 1 shard = {gain:.2f}x "
                    f"deliveries/s (target >= {TARGET_SHARD_GAIN:g}x: {verdict})"
                )
        for s in shards:
            per = [(g, by_layout[(g, s)]["redis_s_per_1k"]) for g in procs if (g, s) in by_layout]
            if len(per) > 1:
                least = min(v for _, v in per)
                spread = f"{max(v for _, v in per) / least:.2f}" if least > 0 else "-"
                notes.append(
                    f"{label}, {s} shard(s): Redis CPU s/1k deliveries by procs "
                    + ", ".join(f"{g}: {v:.4f}" for g, v in per)
                    + f" (max/min {spread})"
                )
    return notes + _machine_bound(rows)


def _machine_bound(rows: list[dict[str, Any]]) -> list[str]:
    """Which rows the machine's cores capped: adding processes there cannot add throughput."""
    cores = os.cpu_count() or 1
    bound = [
        f"{systems.LABELS[r['system']]} {r['layout']}"
        for r in rows
        if r.get("machine_cpu_pct", 0) >= MACHINE_BOUND * 100 * cores
    ]
    if not bound:
        return []
    return [
        f"the machine's {cores} cores were at least {MACHINE_BOUND:.0%} busy in "
        f"{', '.join(bound)}: there every process shares the same cores, so those rows show the "
        "machine's cap, not the gateways' or Redis's"
    ]


async def scale(ctx: Context) -> Table:
    o = ctx.options
    grid = layouts(o.systems, o.scale_gateways, o.scale_shards, o.scale_servers)
    rows = []
    for layout in grid:
        ctx.say(
            f"scale: {layout.system}, {layout.servers} process(es), {layout.shards} shard(s), "
            f"{o.scale_clients} clients each on its own channel"
        )
        row = await _row(ctx, layout)
        ctx.say(
            f"  {row['delivered']:,}/{row['expected']:,} delivered, "
            f"{row['deliveries_per_s'] or 0:,.0f}/s, reach/pub {row.get('reach_per_pub') or 0:.2f}"
            f", idle/pub {row.get('idle_per_pub') or 0:.2f}"
        )
        rows.append(row)
    publishers = f", {o.scale_publishers} publisher processes" if o.scale_publishers > 1 else ""
    title = (
        f"scale: {o.scale_clients:,} clients each on its own channel, spread evenly over the "
        f"server processes; {o.scale_rounds} publications per channel as fast as possible"
        f"{publishers}. "
        "procs x shards: pushgate gateways x broker shards, Socket.IO servers (classic redis "
        "adapter) on one Redis"
    )
    return Table("scale", title, COLUMNS, rows, notes=_compare(rows))
