"""The runner's side of the Node load generator (js/loadgen.js): one or more processes, each
holding a slice of the clients, asked the same questions and their answers merged."""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import Child, Children
from bench.stats import Histogram
from bench.systems import wire

JS_DIR = Path(__file__).parent / "js"
CONNECT_TIMEOUT_MS = 30_000


@dataclass
class ConnectResult:
    connected: int
    failed: int
    errors: dict[str, int]
    elapsed_s: float
    handshake: Histogram

    @property
    def rate(self) -> float:
        return self.connected / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class DeliveryStats:
    clients: int = 0
    received: int = 0
    unique: int = 0
    dups: int = 0
    stray: int = 0
    negative: int = 0
    first_recv_ms: float | None = None
    last_recv_ms: float | None = None
    latency: Histogram = field(default_factory=Histogram)
    closed: int = 0
    close_codes: dict[str, int] = field(default_factory=dict)
    lag_p99_ms: float = 0.0
    lag_max_ms: float = 0.0


def split(total: int, parts: int, first: int = 0) -> list[tuple[int, int]]:
    """(first, count) of each of ``parts`` even shares of ``total`` numbered from ``first``."""
    shares = []
    for n in range(parts):
        count = total // parts + (1 if n < total % parts else 0)
        shares.append((first, count))
        first += count
    return shares


class LoadGen:
    def __init__(self, children: Children, processes: int) -> None:
        self._children = children
        self._count = max(1, processes)
        self._procs: list[Child] = []
        self._ids = itertools.count(1)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    async def start(self) -> LoadGen:
        for n in range(self._count):
            argv = ["node", str(JS_DIR / "loadgen.js")]
            self._procs.append(await self._children.start(f"loadgen{n}", argv, pipes=True))
        return self

    async def stop(self) -> None:
        for proc in self._procs:
            await self._children.stop(proc)
        self._procs = []

    async def _ask(self, proc: Child, cmd: str, params: dict[str, Any]) -> dict[str, Any]:
        stdin, stdout = proc.process.stdin, proc.process.stdout
        assert stdin is not None
        assert stdout is not None
        request_id = next(self._ids)
        stdin.write((json.dumps({"id": request_id, "cmd": cmd, **params}) + "\n").encode())
        await stdin.drain()
        line = await stdout.readline()
        if not line:
            raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail()}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{proc.name}: {cmd} failed: {answer['error']}")
        return answer

    async def _ask_all(self, cmd: str, params: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return list(
            await asyncio.gather(
                *(self._ask(proc, cmd, p) for proc, p in zip(self._procs, params, strict=True))
            )
        )

    async def connect(
        self,
        url: str,
        proto: str,
        clients: int,
        *,
        channel: dict[str, str],
        concurrency: int,
        deflate: bool = False,
        first: int = 0,
    ) -> ConnectResult:
        """Open ``clients`` sockets and subscribe each; ``concurrency`` handshakes in flight.
        Clients are numbered from ``first`` (an own channel's name ends with the number)."""
        per_proc = max(1, concurrency // self._count)
        params = [
            {
                "url": url,
                "proto": wire(proto),
                "first": start,
                "count": count,
                "channel": channel,
                "concurrency": per_proc,
                "deflate": deflate,
                "timeout_ms": CONNECT_TIMEOUT_MS,
            }
            for start, count in split(clients, self._count, first)
        ]
        answers = await self._ask_all("connect", params)
        errors: dict[str, int] = {}
        for answer in answers:
            for reason, count in answer["errors"].items():
                errors[reason] = errors.get(reason, 0) + count
        began = min(a["began"] for a in answers)
        done = max(a["last_done"] for a in answers)
        return ConnectResult(
            connected=sum(a["connected"] for a in answers),
            failed=sum(a["failed"] for a in answers),
            errors=errors,
            elapsed_s=(done - began) / 1000,
            handshake=Histogram.merged(Histogram.from_json(a["hist"]) for a in answers),
        )

    async def phase(self, phase: int, expect: int) -> int:
        """Start counting deliveries of ``phase``; returns the number of subscribed clients."""
        answers = await self._ask_all("phase", [{"phase": phase, "expect": expect}] * self._count)
        return sum(a["clients"] for a in answers)

    async def stats(self) -> DeliveryStats:
        answers = await self._ask_all("stats", [{}] * self._count)
        total = DeliveryStats()
        for a in answers:
            for name in ("clients", "received", "unique", "dups", "stray", "negative", "closed"):
                setattr(total, name, getattr(total, name) + a[name])
            for code, count in a["close_codes"].items():
                total.close_codes[code] = total.close_codes.get(code, 0) + count
            total.lag_p99_ms = max(total.lag_p99_ms, a["lag_p99_ms"])
            total.lag_max_ms = max(total.lag_max_ms, a["lag_max_ms"])
        firsts = [a["first_recv"] for a in answers if a["first_recv"] is not None]
        lasts = [a["last_recv"] for a in answers if a["last_recv"] is not None]
        total.first_recv_ms = min(firsts) if firsts else None
        total.last_recv_ms = max(lasts) if lasts else None
        total.latency = Histogram.merged(Histogram.from_json(a["hist"]) for a in answers)
        return total

    async def close_clients(self) -> None:
        await self._ask_all("close", [{}] * self._count)
