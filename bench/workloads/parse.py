"""parse: pages/s of link extraction on a ~200 KB page with 1,000 links, one process per core.

pushgate's extractor (``worker.links.parse_page``: title and links, resolved and de-duplicated)
is timed in one process, then in two at once; references show what the usual approaches cost on
the same page. Each measurement runs in a fresh ``python -m bench.workloads.parse`` process.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin

from bench import pages
from bench.report import Column, Table, compare
from bench.workloads.common import Context

PAGE_URL = "http://127.0.0.1:8080/articles/page.html"
TARGET_PER_CORE = 35.0
PUSHGATE = "pushgate"


def _pushgate(body: bytes) -> int:
    from worker.links import parse_page

    return len(parse_page(body, PAGE_URL).links)


def _bs4(parser: str) -> Callable[[bytes], int]:
    def extract(body: bytes) -> int:
        from bs4 import BeautifulSoup

        soup = BeautifulSoup(body, parser)
        return len({urljoin(PAGE_URL, str(a["href"])) for a in soup.find_all("a", href=True)})

    return extract


def _lxml_html(body: bytes) -> int:
    import lxml.html

    tree = lxml.html.fromstring(body)
    return len({urljoin(PAGE_URL, str(h)) for h in tree.xpath("//a/@href")})


IMPLEMENTATIONS: dict[str, tuple[str, Callable[[bytes], int]]] = {
    PUSHGATE: ("pushgate worker.links (lxml target scan)", _pushgate),
    "bs4-html.parser": ("bs4 html.parser + find_all (reference)", _bs4("html.parser")),
    "bs4-lxml": ("bs4 lxml + find_all (reference)", _bs4("lxml")),
    "lxml.html": ("lxml.html xpath, no bs4 (reference)", _lxml_html),
}


def measure(name: str, seconds: float) -> dict[str, Any]:
    """Parse the page over and over for ``seconds``; runs in the child process."""
    extract = IMPLEMENTATIONS[name][1]
    body = pages.parse_page()
    links = extract(body)  # warm up imports and caches
    count, cpu, began = 0, time.process_time(), time.monotonic()
    while time.monotonic() - began < seconds:
        extract(body)
        count += 1
    wall = time.monotonic() - began
    return {"pages": count, "wall_s": wall, "cpu_s": time.process_time() - cpu, "links": links}


async def _run_children(ctx: Context, name: str, processes: int) -> list[dict[str, Any]]:
    argv = [sys.executable, "-m", "bench.workloads.parse", name, str(ctx.options.parse_seconds)]
    children = [
        await ctx.children.start(f"parse-{name}", argv, pipes=True) for _ in range(processes)
    ]
    results = []
    for child in children:
        assert child.process.stdout is not None
        line = await child.process.stdout.readline()
        await ctx.children.stop(child)
        if not line:
            raise RuntimeError(f"parse child failed:\n{child.log_tail()}")
        results.append(json.loads(line))
    return results


async def parse(ctx: Context) -> Table:
    body = pages.parse_page()
    runs = [(PUSHGATE, 1), (PUSHGATE, 2), ("bs4-html.parser", 1), ("bs4-lxml", 1), ("lxml.html", 1)]
    rows = []
    for name, processes in runs:
        ctx.say(f"parse: {name}, {processes} process(es), {ctx.options.parse_seconds:g} s")
        results = await _run_children(ctx, name, processes)
        total = sum(r["pages"] / r["wall_s"] for r in results)
        cpu = sum(r["cpu_s"] for r in results) / sum(r["wall_s"] for r in results)
        rows.append(
            {
                "system": name,
                "system_label": IMPLEMENTATIONS[name][0],
                "processes": processes,
                "links": results[0]["links"],
                "pages_per_s": total,
                "pages_per_s_per_proc": total / processes,
                "ms_per_page": 1000 * processes / total if total else None,
                "cpu_pct": 100 * cpu,
                "target": (
                    ("yes" if total / processes >= TARGET_PER_CORE else "NO")
                    if name == PUSHGATE
                    else None
                ),
                "notes": [],
            }
        )
        ctx.say(f"  {total:.1f} pages/s")
    compare(
        rows,
        key="pages_per_s_per_proc",
        label="pages/s",
        higher_is_better=True,
        is_subject=lambda r: bool(r["system"] == PUSHGATE and r["processes"] == 1),
        is_peer=lambda r: str(r["system"]).startswith("bs4-"),
    )
    columns = [
        Column("system_label", "extractor"),
        Column("processes", "procs"),
        Column("links", "links"),
        Column("pages_per_s", "pages/s", 1),
        Column("pages_per_s_per_proc", "pages/s/proc", 1),
        Column("ms_per_page", "ms/page", 1),
        Column("cpu_pct", "CPU %/proc"),
        Column("target", f">= {TARGET_PER_CORE:g}/s/core"),
        Column("vs_peer", "vs best bs4 reference"),
    ]
    title = (
        f"parse: link extraction on a {len(body) / 1000:.0f} KB page with 1,000 links, "
        f"{ctx.options.parse_seconds:g} s per measurement"
    )
    return Table("parse", title, columns, rows)


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], float(sys.argv[2]))), flush=True)
