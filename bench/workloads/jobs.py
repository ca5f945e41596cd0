"""jobs: scrape jobs submitted over HTTP, results followed over WebSocket, against a local origin.

pushgate only (no peer has this feature): one gateway (uvicorn), 1 or 2 workers (``python -m
worker``, as deployed, with pushgate's defaults), a fresh Redis, and a Node origin serving a small
page. js/jobs.js submits with ``POST /jobs`` and follows ``WS /ws/jobs/{id}``; latency runs from
just before the POST to the arrival of the ``result`` frame. First at a fixed rate (open loop),
then as fast as possible with a fixed number of jobs in flight (closed loop).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from bench import pages, systems
from bench.procs import Child, CpuMeter, memory_kb
from bench.report import Column, Table
from bench.stats import Histogram
from bench.workloads.common import Context
from pushgate.cli.processes import free_port, python_module

WORKER_READY_S = 30.0
TARGET_P50_MS = 20.0
TARGET_P99_MS = 100.0


async def _wait_for_log(child: Child, text: str) -> None:
    deadline = time.monotonic() + WORKER_READY_S
    while text not in child.log.read_text(errors="replace"):
        if not child.alive:
            raise RuntimeError(f"{child.name} exited:\n{child.log_tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{child.name} not ready:\n{child.log_tail()}")
        await asyncio.sleep(0.1)


async def _drive(ctx: Context, gateway: str, page_url: str, *args: str) -> dict[str, Any]:
    argv = ["node", str(systems.JS_DIR / "jobs.js"), "--gateway", gateway, "--url", page_url, *args]
    driver = await ctx.children.start("jobs-driver", argv, pipes=True)
    assert driver.process.stdout is not None
    line = await driver.process.stdout.readline()
    await ctx.children.stop(driver)
    if not line:
        raise RuntimeError(f"jobs driver failed:\n{driver.log_tail()}")
    summary: dict[str, Any] = json.loads(line)
    return summary


async def _run_workers(ctx: Context, workers: int) -> list[dict[str, Any]]:
    o = ctx.options
    page = ctx.children.log_dir / "page.html"
    page.write_bytes(pages.small_page())
    redis = ctx.children.start_redis()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PUSHGATE_")},
        **systems.pushgate_env(redis.url),
        "PUSHGATE_ALLOW_PRIVATE_ADDRESSES": "true",
    }
    origin_port = free_port()
    origin = await ctx.children.start(
        "origin", ["node", str(systems.JS_DIR / "origin.js"), "--port", str(origin_port),
                   "--page", str(page)],
    )  # fmt: skip
    page_url = f"http://127.0.0.1:{origin_port}/page.html"
    server = await systems.start(systems.PUSHGATE, ctx.children, [redis], deflate=False)
    pool = []
    for n in range(workers):
        worker = await ctx.children.start(
            f"worker{n}",
            python_module("worker"),
            env=env,
            cwd=systems.REPO,
        )
        pool.append(worker)
    for worker in pool:
        await _wait_for_log(worker, "Starting worker")
    warm = await _drive(ctx, server.http_url, page_url, "--count", str(4 * workers),
                        "--concurrency", str(2 * workers))  # fmt: skip
    if warm["ok"] != 4 * workers:
        raise RuntimeError(f"warm-up jobs failed: {warm['errors']}")
    count = max(1, round(o.jobs_rate * o.jobs_duration_s))
    phases = [
        (f"{o.jobs_rate:g}/s", ["--count", str(count), "--rate", str(o.jobs_rate)]),
        (f"max ({o.jobs_max_concurrency} in flight)",
         ["--count", str(o.jobs_max_jobs), "--concurrency", str(o.jobs_max_concurrency)]),
    ]  # fmt: skip
    rows = []
    for label, args in phases:
        ctx.say(f"  {workers} worker(s): {label}")
        meters = {
            "gateway": CpuMeter([server.server_pid]),
            "workers": CpuMeter([w.pid for w in pool]),
            "redis": CpuMeter([server.redis_pid]),
            "origin": CpuMeter([origin.pid]),
        }
        summary = await _drive(ctx, server.http_url, page_url, *args)
        for meter in meters.values():
            meter.stop()
        row = _row(workers, label, summary, meters, server, pool, paced=label.endswith("/s"))
        ctx.say(
            f"    {row['ok']}/{row['jobs']} ok, {row['jobs_per_s'] or 0:.1f} jobs/s, "
            f"p50 {row['p50_ms'] or 0:.1f} ms, p99 {row['p99_ms'] or 0:.1f} ms"
        )
        rows.append(row)
        await asyncio.sleep(1.0)
    for child in [*pool, server.server, origin]:
        await ctx.children.stop(child)
    ctx.children.stop_redis(redis)
    return rows


def _row(
    workers: int,
    label: str,
    summary: dict[str, Any],
    meters: dict[str, CpuMeter],
    server: systems.Running,
    pool: list[Child],
    *,
    paced: bool,
) -> dict[str, Any]:
    latency = Histogram.from_json(summary["latency"])
    queued = Histogram.from_json(summary["queued"])
    window = (
        (summary["last_result"] - summary["first_submit"]) / 1000 if summary["last_result"] else 0
    )
    notes = []
    if summary["errors"]:
        notes.append(f"errors in {label}: {summary['errors']}")
    lat = latency.summary()
    meets = None
    if paced and lat["p50_ms"] is not None and lat["p99_ms"] is not None:
        meets = "yes" if lat["p50_ms"] < TARGET_P50_MS and lat["p99_ms"] < TARGET_P99_MS else "NO"
    return {
        "system": systems.PUSHGATE,
        "system_label": f"pushgate, {workers} worker{'s' if workers > 1 else ''}",
        "workers": workers,
        "phase": label,
        "jobs": summary["submitted"],
        "ok": summary["ok"],
        "failed": summary["failed"],
        "lost": summary["lost"],
        "jobs_per_s": summary["ok"] / window if window > 0 else None,
        **lat,
        "queued_p50_ms": queued.percentile(50),
        "started_p50_ms": Histogram.from_json(summary["started"]).percentile(50),
        "post_p50_ms": Histogram.from_json(summary["post"]).percentile(50),
        "gateway_cpu_pct": meters["gateway"].percent_of_core,
        "workers_cpu_pct": meters["workers"].percent_of_core,
        "worker_cpu_ms_per_job": 1000 * meters["workers"].cpu_s / max(1, summary["ok"]),
        "redis_cpu_pct": meters["redis"].percent_of_core,
        "gateway_peak_rss_mb": memory_kb(server.server_pid)[1] / 1024,
        "worker_peak_rss_mb": max(memory_kb(w.pid)[1] for w in pool) / 1024,
        "target": meets,
        "notes": notes,
    }


async def jobs(ctx: Context) -> Table:
    o = ctx.options
    rows = []
    for workers in o.jobs_workers:
        ctx.say(f"jobs: {workers} worker process(es)")
        rows += await _run_workers(ctx, workers)
    columns = [
        Column("system_label", "system"),
        Column("phase", "phase"),
        Column("ok", "ok"),
        Column("failed", "failed"),
        Column("lost", "lost"),
        Column("jobs_per_s", "jobs/s", 1),
        Column("p50_ms", "p50 ms", 1),
        Column("p90_ms", "p90 ms", 1),
        Column("p99_ms", "p99 ms", 1),
        Column("max_ms", "max ms", 1),
        Column("queued_p50_ms", "queued p50", 1),
        Column("started_p50_ms", "started p50", 1),
        Column("gateway_cpu_pct", "gw %core"),
        Column("workers_cpu_pct", "workers %core"),
        Column("worker_cpu_ms_per_job", "worker CPU ms/job", 1),
        Column("worker_peak_rss_mb", "worker RSS MB", 1),
        Column("target", f"p50<{TARGET_P50_MS:g} & p99<{TARGET_P99_MS:g}"),
    ]
    title = (
        f"jobs: scrape jobs (POST /jobs, result on WS /ws/jobs/{{id}}) against a local "
        f"{len(pages.small_page()) / 1000:.0f} KB page; {o.jobs_rate:g} jobs/s for "
        f"{o.jobs_duration_s:g} s, then {o.jobs_max_jobs} jobs with {o.jobs_max_concurrency} "
        "in flight; latency = submit to result frame"
    )
    return Table("jobs", title, columns, rows)
