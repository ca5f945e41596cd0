"""The ``pushgate`` command."""

from __future__ import annotations

import argparse
import os
from collections.abc import Coroutine, Sequence
from typing import Any

from pushgate.cli import ops
from pushgate.cli import verbs as cli_verbs
from pushgate.cli.dev import DevOptions, run_dev
from pushgate.cli.verbs import DEFAULT_GATEWAY, Target, UsageError, parse_json, parse_since


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pushgate", description="pushgate push gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    dev = commands.add_parser(
        "dev",
        help="run Redis (embedded unless PUSHGATE_REDIS_URL is set), a gateway and a worker",
    )
    dev.add_argument("--host", default="127.0.0.1", help="gateway bind address")
    dev.add_argument("--port", type=int, default=8000, help="gateway port (default 8000)")

    client = _client_options()
    submit = commands.add_parser(
        "submit", parents=[client], help="submit a URL to scrape; print the answer as JSON"
    )
    submit.add_argument("url", help="absolute http(s) URL")
    submit.add_argument("--request-id", help="idempotency key (default: generated)")
    submit.add_argument(
        "--follow",
        action="store_true",
        help="print every event of the job too; exit 0 on result, 1 on failed",
    )
    subscribe = commands.add_parser(
        "subscribe", parents=[client], help="print a channel's publications until Ctrl-C"
    )
    subscribe.add_argument("channel", help="<namespace>:<name>")
    subscribe.add_argument("--since", metavar="EPOCH:OFFSET", help="replay what came after this")
    publish = commands.add_parser(
        "publish", parents=[client], help="publish JSON data on a channel"
    )
    publish.add_argument("channel", help="<namespace>:<name>")
    publish.add_argument("data", metavar="JSON", help="the publication, any JSON value")
    _operator_verbs(commands)
    return parser


def _operator_verbs(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = commands.add_parser(
        "token", help="print a connection token signed with PUSHGATE_JWT_SECRET"
    )
    token.add_argument("--sub", required=True, help="the user the token is for")
    token.add_argument(
        "--channels", nargs="*", default=[], help="private channels or <namespace>:* patterns"
    )
    token.add_argument(
        "--ttl", type=int, default=3600, help="seconds until it expires (default 3600; 0: never)"
    )
    commands.add_parser(
        "check-config", help="list every problem of the PUSHGATE_* environment; exit 1 if any"
    )
    commands.add_parser("version", help="print the versions of pushgate and what it runs on")


def _client_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--gateway",
        help=f"gateway base URL (default: $PUSHGATE_GATEWAY_URL, else {DEFAULT_GATEWAY})",
    )
    options.add_argument("--token", help="connection token, a JWT (default: $PUSHGATE_TOKEN)")
    return options


def _verb(args: argparse.Namespace) -> Coroutine[Any, Any, int]:
    """The verb to run; every value is checked before it is built."""
    target = Target.resolve(args.gateway, args.token, os.environ)
    if args.command == "submit":
        return cli_verbs.submit(target, args.url, args.request_id, follow=args.follow)
    if args.command == "subscribe":
        since = None if args.since is None else parse_since(args.since)
        return cli_verbs.subscribe(target, args.channel, since)
    if args.command == "publish":
        return cli_verbs.publish(target, args.channel, parse_json(args.data))
    raise AssertionError(args.command)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "dev":
        return run_dev(DevOptions(host=args.host, port=args.port), os.environ)
    if args.command == "token":
        if args.ttl < 0:
            parser.error("--ttl must not be negative")
        return ops.token(os.environ, args.sub, tuple(args.channels), args.ttl)
    if args.command == "check-config":
        return ops.check_config(os.environ)
    if args.command == "version":
        return ops.version()
    try:
        verb = _verb(args)
    except UsageError as exc:
        parser.error(str(exc))  # exits with 2
    return cli_verbs.run(verb)


if __name__ == "__main__":
    raise SystemExit(main())
