"""``python -m bench``: install what the suite needs, run the workloads, print and save tables."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import deps, report, systems
from bench.procs import Children, load_average, raise_fd_limit
from bench.workloads import connections, curves, delivery, jobs, parse, scale
from bench.workloads.common import Context, Options

RESULTS = Path(__file__).parent / "results"
Workload = Callable[[Context], Awaitable[report.Table]]
WORKLOADS: dict[str, Workload] = {
    "fanout": delivery.fanout,
    "per-channel": delivery.per_channel,
    "idle-memory": connections.idle_memory,
    "connect-storm": connections.connect_storm,
    "cost-curves": curves.cost_curves,
    "jobs": jobs.jobs,
    "parse": parse.parse,
    "scale": scale.scale,
}


def _parser() -> argparse.ArgumentParser:
    d = Options(systems=list(systems.SYSTEMS))
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="pushgate and its peers (broadcaster, Socket.IO), side by side.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--only",
        action="append",
        choices=list(WORKLOADS),
        metavar="WORKLOAD",
        help=f"run only this workload (repeatable): {', '.join(WORKLOADS)}",
    )
    p.add_argument(
        "--systems",
        default=",".join(d.systems),
        help="comma-separated systems for the delivery and connection workloads",
    )
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply every client and publication count (0.1 for a quick try)",
    )
    p.add_argument(
        "--skip-install",
        action="store_true",
        help="do not run npm ci / pip install (they are skipped when up to date)",
    )
    p.add_argument(
        "--loadgen-procs",
        type=int,
        default=d.loadgen_procs,
        help="Node load generator processes sharing the clients",
    )
    g = p.add_argument_group("fanout")
    g.add_argument("--fanout-clients", type=int, default=d.fanout_clients)
    g.add_argument("--fanout-publications", type=int, default=d.fanout_publications)
    g.add_argument("--fanout-rate", type=float, default=d.fanout_rate)
    g = p.add_argument_group("per-channel")
    g.add_argument("--channel-clients", type=int, default=d.channel_clients)
    g.add_argument("--channel-paced-rounds", type=int, default=d.channel_paced_rounds)
    g.add_argument("--channel-round-rate", type=float, default=d.channel_round_rate)
    g.add_argument("--channel-rounds", type=int, default=d.channel_rounds)
    g = p.add_argument_group("idle-memory")
    g.add_argument("--idle-clients", type=int, default=d.idle_clients)
    g = p.add_argument_group("connect-storm")
    g.add_argument(
        "--storm-clients", default=_csv(d.storm_clients), help="clients per storm, comma-separated"
    )
    g.add_argument("--storm-concurrency", type=int, default=d.storm_concurrency)
    g = p.add_argument_group("cost-curves")
    g.add_argument("--curve-points", default=_csv(d.curve_points), help="clients, comma-separated")
    g.add_argument(
        "--curve-delivery-points",
        default=_csv(d.curve_delivery_points),
        help="the points that also deliver, comma-separated",
    )
    g.add_argument("--curve-rounds", type=int, default=d.curve_rounds)
    g = p.add_argument_group("jobs")
    g.add_argument("--jobs-rate", type=float, default=d.jobs_rate)
    g.add_argument("--jobs-duration", type=float, default=d.jobs_duration_s)
    g.add_argument("--jobs-max-jobs", type=int, default=d.jobs_max_jobs)
    g.add_argument("--jobs-max-concurrency", type=int, default=d.jobs_max_concurrency)
    g.add_argument(
        "--jobs-workers",
        default=_csv(d.jobs_workers),
        help="worker process counts, comma-separated",
    )
    g = p.add_argument_group("parse")
    g.add_argument("--parse-seconds", type=float, default=d.parse_seconds)
    g = p.add_argument_group("scale")
    g.add_argument("--scale-clients", type=int, default=d.scale_clients)
    g.add_argument(
        "--scale-rounds",
        type=int,
        default=d.scale_rounds,
        help="publications per channel, as fast as possible",
    )
    g.add_argument(
        "--scale-publishers",
        type=int,
        default=d.scale_publishers,
        help="publisher processes sharing the channels (the same in every row)",
    )
    for flag, counts, what in (
        ("--scale-gateways", d.scale_gateways, "pushgate gateway process counts"),
        (
            "--scale-shards",
            d.scale_shards,
            "pushgate broker shard counts, each with every gateway count",
        ),
        ("--scale-servers", d.scale_servers, "Socket.IO server process counts, on one Redis"),
    ):
        g.add_argument(flag, default=_csv(counts), help=f"{what} (comma-separated)")
    return p  # fmt: skip


def _csv(counts: list[int]) -> str:
    return ",".join(str(n) for n in counts)


def _counts(text: str) -> list[int]:
    """ "1,2,4" -> [1, 2, 4]; every count at least 1."""
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        raise SystemExit(f"bench: expected comma-separated counts of at least 1, got {text!r}")
    return counts


def _options(args: argparse.Namespace) -> Options:
    def scaled(n: int) -> int:
        return max(1, round(n * float(args.scale)))

    chosen = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(chosen) - set(systems.SYSTEMS)
    if unknown:
        raise SystemExit(f"bench: unknown systems {sorted(unknown)}; known: {systems.SYSTEMS}")
    return Options(
        systems=chosen,
        loadgen_procs=args.loadgen_procs,
        fanout_clients=scaled(args.fanout_clients),
        fanout_publications=scaled(args.fanout_publications),
        fanout_rate=args.fanout_rate,
        channel_clients=scaled(args.channel_clients),
        channel_paced_rounds=args.channel_paced_rounds,
        channel_round_rate=args.channel_round_rate,
        channel_rounds=args.channel_rounds,
        idle_clients=scaled(args.idle_clients),
        storm_clients=[scaled(n) for n in _counts(args.storm_clients)],
        storm_concurrency=min(
            args.storm_concurrency, *(scaled(n) for n in _counts(args.storm_clients))
        ),
        curve_points=[scaled(n) for n in _counts(args.curve_points)],
        curve_delivery_points=[scaled(n) for n in _counts(args.curve_delivery_points)],
        curve_rounds=args.curve_rounds,
        jobs_rate=args.jobs_rate,
        jobs_duration_s=args.jobs_duration * min(1.0, args.scale),
        jobs_max_jobs=scaled(args.jobs_max_jobs),
        jobs_max_concurrency=args.jobs_max_concurrency,
        jobs_workers=_counts(args.jobs_workers),
        parse_seconds=args.parse_seconds,
        scale_clients=scaled(args.scale_clients),
        scale_rounds=args.scale_rounds,
        scale_gateways=_counts(args.scale_gateways),
        scale_shards=_counts(args.scale_shards),
        scale_servers=_counts(args.scale_servers),
        scale_publishers=max(1, args.scale_publishers),
    )


def _git(*argv: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(systems.REPO), *argv], capture_output=True, text=True, check=False
        )
    except OSError:
        return ""
    return done.stdout.strip()


def pushgate_version() -> str:
    """The commit pushgate's code is at, with "+changes" when its files differ from it."""
    dirty = _git("status", "--porcelain", "--", "gateway", "pushgate", "worker")
    return _git("rev-parse", "--short", "HEAD") + ("+changes" if dirty else "")


def _meta(options: Options) -> dict[str, Any]:
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(sys.argv),
        "options": options.__dict__,
        "host": {"cores": os.cpu_count(), "platform": platform.platform()},
        "load_before": load_average(),
        "pushgate": pushgate_version(),
        "versions": deps.versions(),
    }


async def _run(args: argparse.Namespace, options: Options, children: Children, stamp: str) -> None:
    names = args.only or list(WORKLOADS)
    ctx = Context(children, options)
    meta = _meta(options)
    tables: list[report.Table] = []
    for name in names:
        version = pushgate_version()
        ctx.say(f"== {name} (pushgate {version}, load average {load_average()[0]:.2f})")
        try:
            table = await WORKLOADS[name](ctx)
        finally:
            await children.stop_all()
        table.pushgate = version
        tables.append(table)
        print(report.render(table) + "\n", flush=True)
        meta["load_after"] = load_average()
        for path in (RESULTS / f"{stamp}.json", RESULTS / "latest.json"):
            report.save(path, meta, tables)
    print(f"results: {RESULTS / f'{stamp}.json'} (and latest.json); logs: {children.log_dir}")
    if max(meta["load_before"][0], meta["load_after"][0]) > (os.cpu_count() or 1):
        print(
            f"warning: the load average was {meta['load_before'][0]:.1f} before and "
            f"{meta['load_after'][0]:.1f} after on {os.cpu_count()} cores: other processes "
            "competed for the CPU, so the numbers are noisy"
        )


def _interrupt(_signum: int, _frame: object) -> None:
    """SIGTERM ends a run the way Ctrl-C does, stopping every child on the way out."""
    raise KeyboardInterrupt


def main() -> None:
    args = _parser().parse_args()
    options = _options(args)
    # Storms and curve points are lowered to what the limit allows (fd_capped); these are not.
    clients = (options.idle_clients, options.fanout_clients, options.channel_clients,
               options.scale_clients)  # fmt: skip
    raise_fd_limit(max(clients) + 1000)
    if not args.skip_install:
        deps.install()
    deps.check()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_dir = RESULTS / "logs" / stamp
    log_dir.mkdir(parents=True, exist_ok=True)
    children = Children(log_dir)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        asyncio.run(_run(args, options, children, stamp))
    except KeyboardInterrupt:
        print("bench: interrupted; stopping everything it started", file=sys.stderr)
        children.kill_all_now()
        raise SystemExit(130) from None
    finally:
        children.kill_all_now()
