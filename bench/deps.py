"""What the suite needs beyond the project: Node packages (npm ci in bench/) and the Python peer.

broadcaster 0.3.1 is the release that works with the project's redis-py 5.x (it delivers nothing
with redis-py 8); it is installed into the running venv with redis-py pinned where it is.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parent
BROADCASTER = "0.3.1"
MSGPACK = "msgpack>=1.0,<2"
NODE_PACKAGES = ("ws", "socket.io", "@socket.io/redis-adapter", "@socket.io/redis-emitter", "redis")


def _installed(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _node_modules_current() -> bool:
    marker = BENCH / "node_modules" / ".package-lock.json"
    lock = BENCH / "package-lock.json"
    return marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime


def install() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise SystemExit("bench: needs Node.js 18+ and npm on PATH")
    if not _node_modules_current():
        print("bench: npm ci (bench/package-lock.json)", file=sys.stderr, flush=True)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BENCH, check=True)
    if _installed("broadcaster") != BROADCASTER or _installed("msgpack") is None:
        redis_py = _installed("redis")
        pins = [f"broadcaster[redis]=={BROADCASTER}", MSGPACK]
        pins += [f"redis=={redis_py}"] if redis_py else []
        print(f"bench: pip install {' '.join(pins)}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *pins], check=True)


_EMITTER_CHECK = """
const { Emitter } = require("@socket.io/redis-emitter");
const sent = [];
new Emitter({ publish: (channel, msg) => sent.push([channel, Buffer.from(msg).toString("hex")]) })
  .to(process.argv[1]).emit("pub", JSON.parse(process.argv[2]));
console.log(JSON.stringify(sent[0]));
"""


def check() -> None:
    missing = [name for name in ("broadcaster", "msgpack") if _installed(name) is None]
    if missing:
        raise SystemExit(f"bench: missing Python packages {missing}; run without --skip-install")
    _check_emitter()


def _check_emitter() -> None:
    """Fail early when a piece is missing, or our Socket.IO emit differs from the real emitter."""
    from bench.publisher import socketio_emit  # needs msgpack, which install() brings

    room, data = "bench:c1", {"p": 1, "s": 2, "t": 1763700000000.25}
    result = subprocess.run(
        ["node", "-e", _EMITTER_CHECK, room, json.dumps(data)],
        cwd=BENCH, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"bench: node packages missing or broken:\n{result.stderr}")
    channel, message = socketio_emit(room, data)
    if json.loads(result.stdout) != [channel, message.hex()]:
        raise SystemExit(
            "bench: the publisher's Socket.IO emit differs from @socket.io/redis-emitter:\n"
            f"  emitter: {result.stdout.strip()}\n  ours:    {[channel, message.hex()]}"
        )


def _node_version(package: str) -> str | None:
    try:
        raw = (BENCH / "node_modules" / package / "package.json").read_text()
    except OSError:
        return None
    version = json.loads(raw).get("version")
    return str(version) if version else None


def _command(*argv: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError:
        return ""
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else ""


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {
        "python": sys.version.split()[0],
        "node": _command("node", "--version"),
        "redis-server": _command("redis-server", "--version"),
    }
    for name in ("starlette", "uvicorn", "websockets", "uvloop", "redis", "hiredis", "arq",
                 "broadcaster", "beautifulsoup4", "lxml", "httpx"):  # fmt: skip
        found[name] = _installed(name)
    for package in NODE_PACKAGES:
        found[f"npm:{package}"] = _node_version(package)
    return found
