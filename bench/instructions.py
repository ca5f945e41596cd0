"""Instructions per connect+subscribe, counted by valgrind's callgrind: a number that does not
move with what else the machine is doing (the connect-storm's CPU time does, a lot, on a shared
2-core box), so it shows what a change to the connection path is worth.

Each server runs under ``valgrind --tool=callgrind`` with instrumentation off; after a warm-up
of ``--warm-up`` clients, the counters are zeroed, ``--clients`` clients connect and subscribe
(``--in-flight`` at a time, each to its own channel, from a websockets client in this process),
and the counters are dumped: instructions / clients. ``pushgate gateway`` (its lean protocol)
and ``uvicorn gateway.app:app`` (uvicorn's protocol) run side by side, on one Redis each.

    .venv/bin/python -m bench.instructions [--clients 500] [--in-flight 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from bench.procs import VENV_BIN, Children, wait_http_ok
from bench.systems import pushgate_env
from pushgate.cli.processes import free_port

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 300.0  # seconds: a gateway starts slowly under valgrind

SERVERS = {
    "pushgate gateway (lean)": ["-m", "pushgate.cli.main", "gateway", "--log-level", "warning"],
    "uvicorn gateway.app:app": ["-m", "uvicorn", "gateway.app:app", "--log-level", "warning"],
}


async def _client(url: str, channel: str) -> ClientConnection:
    ws = await connect(url, compression=None, open_timeout=60)
    call = {"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": {"channel": channel}}
    await ws.send(json.dumps(call))
    answer = json.loads(await ws.recv())
    if "result" not in answer:
        raise RuntimeError(f"subscribe failed: {answer}")
    return ws


async def _storm(url: str, prefix: str, count: int, in_flight: int) -> list[ClientConnection]:
    limit = asyncio.Semaphore(in_flight)

    async def one(number: int) -> ClientConnection:
        async with limit:
            return await _client(url, f"bench:{prefix}{number}")

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def _control(pid: int, *args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "callgrind_control", *args, str(pid), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    if await process.wait() != 0:
        raise RuntimeError(f"callgrind_control {' '.join(args)} failed")


def _total(out: Path) -> int:
    """The instructions of the dump callgrind_control made (the last file written)."""
    dumps = sorted(out.glob("cg.*.*"), key=lambda p: p.stat().st_mtime)
    for line in dumps[-1].read_text().splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no summary in {dumps[-1]}")


async def _measure(name: str, argv: Sequence[str], args: argparse.Namespace, out: Path) -> float:
    """Start the server under callgrind on a Redis of its own, warm up, then count
    ``args.clients`` connections' instructions; both processes stopped on the way out."""
    children = Children(out)  # the server's log goes beside callgrind's dumps
    try:
        redis = children.start_redis()
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHGATE_")}
        env |= pushgate_env(redis.url) | {"PYTHONHASHSEED": "0"}
        command = [
            "valgrind", "--tool=callgrind", "--instr-atstart=no",
            f"--callgrind-out-file={out}/cg.%p", str(VENV_BIN / "python"), *argv,
            "--host", "127.0.0.1", "--port", str(port),
        ]  # fmt: skip
        server = await children.start(name.split()[0], command, env=env, cwd=REPO)
        await wait_http_ok(f"http://127.0.0.1:{port}/readyz", server, within_s=START_TIMEOUT)
        url = f"ws://127.0.0.1:{port}/ws"
        warm = await _storm(url, "warm", args.warm_up, args.in_flight)
        await _control(server.pid, "--instr=on")
        await _control(server.pid, "--zero")
        measured = await _storm(url, "cg", args.clients, args.in_flight)
        await _control(server.pid, "--dump")
        for ws in warm + measured:
            await ws.close()
        return _total(out) / int(args.clients)
    finally:
        await children.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--in-flight", type=int, default=20)
    parser.add_argument("--warm-up", type=int, default=50)
    args = parser.parse_args()
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench.instructions: needs {tool} (Debian's valgrind package)")
    rows = []
    for name, argv in SERVERS.items():
        with tempfile.TemporaryDirectory(prefix="pushgate-callgrind-") as out:
            print(f"{name}: {args.clients} clients, {args.in_flight} in flight", file=sys.stderr)
            rows.append((name, asyncio.run(_measure(name, argv, args, Path(out)))))
    baseline = rows[-1][1]
    print(f"\n{'server':<26} {'M instructions/conn':>20} {'vs uvicorn':>11}")
    for name, per_connection in rows:
        print(f"{name:<26} {per_connection / 1e6:>20.3f} {per_connection / baseline:>10.2f}x")


if __name__ == "__main__":
    main()
