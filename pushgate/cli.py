"""The ``pushgate`` command."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from pushgate.dev import DevOptions, run_dev


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pushgate", description="pushgate push gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    dev = commands.add_parser(
        "dev",
        help="run Redis (embedded unless PUSHGATE_REDIS_URL is set), a gateway and a worker",
    )
    dev.add_argument("--host", default="127.0.0.1", help="gateway bind address")
    dev.add_argument("--port", type=int, default=8000, help="gateway port (default 8000)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "dev":
        return run_dev(DevOptions(host=args.host, port=args.port), os.environ)
    raise AssertionError(args.command)


if __name__ == "__main__":
    raise SystemExit(main())
