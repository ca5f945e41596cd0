"""Child processes of a run, and what /proc says about them.

Every child starts in its own session (a terminal's Ctrl-C reaches only the runner, which stops
its children in order), is tied to the runner's life (Linux PDEATHSIG), writes its output to a
log file of the run, and is stopped by its pid: SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from pushgate.cli.redis_server import RedisServer

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1
STOP_TIMEOUT = 10.0
VENV_BIN = Path(sys.executable).parent


def raise_fd_limit(needed: int) -> int:
    """Raise our soft RLIMIT_NOFILE to the hard limit (children inherit it); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed * 2)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        raise SystemExit(
            f"bench: needs {needed} open files per process but the hard limit is {target}; "
            "raise it (ulimit -Hn) or run with fewer clients"
        )
    return target


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (0 when it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in kB: resident now, and its peak."""
    rss = hwm = 0
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0, 0
    for line in lines:
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return rss, hwm


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy (not idle or waiting on I/O) since boot."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


class MachineMeter:
    """CPU the whole machine used between ``start`` and ``stop``: to tell how much of it was
    someone else's (other processes make every number noisy)."""

    def __init__(self) -> None:
        self._began = machine_busy_seconds()
        self.cpu_s = 0.0

    def stop(self) -> MachineMeter:
        self.cpu_s = machine_busy_seconds() - self._began
        return self


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


class CpuMeter:
    """CPU seconds used by some processes between ``start`` and ``stop``, and the wall time."""

    def __init__(self, pids: Sequence[int]) -> None:
        self._pids = list(pids)
        self._began_cpu = [cpu_seconds(p) for p in self._pids]
        self._began = time.monotonic()
        self.cpu_s = 0.0
        self.wall_s = 0.0
        self.per_process_s = [0.0 for _ in self._pids]

    def stop(self) -> CpuMeter:
        self.wall_s = time.monotonic() - self._began
        now = [cpu_seconds(p) for p in self._pids]
        self.per_process_s = [b - a for a, b in zip(self._began_cpu, now, strict=True)]
        self.cpu_s = sum(self.per_process_s)
        return self

    @property
    def percent_of_core(self) -> float:
        return 100 * self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    def per_process_percent(self) -> list[float]:
        """Each process's share of one core, for saturation checks."""
        if self.wall_s <= 0:
            return [0.0 for _ in self._pids]
        return [100 * used / self.wall_s for used in self.per_process_s]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Children:
    """Everything a run started; ``stop_all`` ends what is left, newest first."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._children: list[Child] = []
        self._redis: list[RedisServer] = []
        self._counter = 0

    async def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        pipes: bool = False,
    ) -> Child:
        """Start ``argv``; with ``pipes`` its stdin and stdout are ours, else both go to its log."""
        self._counter += 1
        log = self.log_dir / f"{self._counter:03d}-{name}.log"
        with log.open("wb") as sink:
            process = await asyncio.create_subprocess_exec(
                *argv,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipes else sink,
                stderr=sink,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                limit=64 * 1024 * 1024,
            )
        child = Child(name, process, log)
        self._children.append(child)
        return child

    def start_redis(self) -> RedisServer:
        redis = RedisServer().start()
        self._redis.append(redis)
        return redis

    async def stop(self, child: Child, grace_s: float = STOP_TIMEOUT) -> int:
        process = child.process
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        code = await process.wait()
        if child in self._children:
            self._children.remove(child)
        return code

    def stop_redis(self, redis: RedisServer) -> None:
        redis.stop()
        if redis in self._redis:
            self._redis.remove(redis)

    async def stop_all(self) -> None:
        for child in reversed(list(self._children)):
            await self.stop(child)
        for redis in reversed(list(self._redis)):
            self.stop_redis(redis)

    def kill_all_now(self) -> None:
        """Last resort on the way out (no event loop): SIGKILL what is still running."""
        for child in self._children:
            if child.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)
        for redis in self._redis:
            redis.stop()


async def wait_http_ok(url: str, child: Child, within_s: float = 30.0) -> None:
    """Poll ``url`` until it answers 200; fail early if ``child`` exits."""
    deadline = time.monotonic() + within_s
    async with httpx.AsyncClient(timeout=1.0) as client:
        while True:
            if not child.alive:
                raise RuntimeError(f"{child.name} exited early:\n{child.log_tail()}")
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{child.name} not ready at {url}:\n{child.log_tail()}")
            await asyncio.sleep(0.1)
