"""The ``pushgate`` command."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from pushgate.cli import ops
from pushgate.cli import verbs as cli_verbs
from pushgate.cli.dev import DevOptions, run_dev
from pushgate.cli.verbs import DEFAULT_GATEWAY, Target, UsageError, parse_json, parse_since
from pushgate.core.settings import SettingsError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pushgate", description="pushgate push gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    dev = commands.add_parser(
        "dev",
        help="run Redis (embedded unless PUSHGATE_REDIS_URL is set), a gateway and a worker",
    )
    dev.add_argument("--host", default="127.0.0.1", help="gateway bind address")
    dev.add_argument("--port", type=int, default=8000, help="gateway port (default 8000)")
    _gateway_parser(commands)

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
    rpc = commands.add_parser(
        "rpc", parents=[client], help="call an application method; print its result as JSON"
    )
    rpc.add_argument("method", help="<route> or <route>.<member>")
    rpc.add_argument("params", metavar="JSON", nargs="?", help="its params, any JSON value")
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
    status = commands.add_parser("status", help="print GET /status of each gateway as a table")
    status.add_argument("gateways", nargs="+", metavar="URL", help="gateway base URLs")
    status.add_argument("--api-key", help="a key of PUSHGATE_API_KEYS (default: $PUSHGATE_API_KEY)")


def _gateway_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # Options left out are absent, so that the defaults are ServerOptions' own.
    gateway = commands.add_parser(
        "gateway",
        help="run one gateway (uvicorn); SIGTERM drains it over PUSHGATE_DRAIN_SECONDS",
        argument_default=argparse.SUPPRESS,
    )
    gateway.add_argument("--host", help="bind address (default 127.0.0.1)")
    gateway.add_argument("--port", type=int, help="port (default 8000)")
    gateway.add_argument(
        "--ws-per-message-deflate",
        type=_boolean,
        metavar="{true,false}",
        help="WebSocket compression (default false: it costs ~40 kB per idle connection)",
    )
    gateway.add_argument(
        "--ws",
        choices=["lean", "websockets-sansio"],
        help="WebSocket protocol: pushgate's lean one (default) or uvicorn's websockets-sansio",
    )
    gateway.add_argument("--ws-ping-interval", type=float, help="seconds (default 20)")
    gateway.add_argument("--ws-ping-timeout", type=float, help="seconds (default 20)")
    gateway.add_argument(
        "--forwarded-allow-ips",
        help="proxies whose X-Forwarded-* headers are trusted (default: uvicorn's, loopback)",
    )
    gateway.add_argument("--access-log", action="store_true", help="log every request")
    gateway.add_argument(
        "--log-level", choices=["critical", "error", "warning", "info", "debug"], help="(info)"
    )


def _boolean(raw: str) -> bool:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise argparse.ArgumentTypeError(f"{raw!r} is not true or false")


def _run_gateway(args: argparse.Namespace) -> int:
    # Imported here: the client verbs need neither uvicorn nor the app.
    from gateway.server import ServerOptions, run_gateway

    names = {option.name for option in dataclasses.fields(ServerOptions)}
    options = ServerOptions(**{k: v for k, v in vars(args).items() if k in names})
    try:
        return run_gateway(options, os.environ)
    except SettingsError as exc:
        print(f"pushgate gateway: {exc}", file=sys.stderr)
        return 1


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
    if args.command == "rpc":
        params = None if args.params is None else parse_json(args.params)
        return cli_verbs.rpc(target, args.method, params)
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
    if args.command == "status":
        return ops.status(args.gateways, args.api_key or os.environ.get("PUSHGATE_API_KEY"))
    if args.command == "gateway":
        return _run_gateway(args)
    try:
        verb = _verb(args)
    except UsageError as exc:
        parser.error(str(exc))  # exits with 2
    return cli_verbs.run(verb)


if __name__ == "__main__":
    raise SystemExit(main())
