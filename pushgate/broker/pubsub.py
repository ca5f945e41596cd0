"""A gateway process's one pub/sub connection to a Redis (per broker shard), as batches of
typed events.

A gateway's hottest loop reads this connection, so it is a small RESP client of its own rather
than redis-py's ``PubSub``: one socket read hands every complete reply in the buffer to hiredis at
once, and the caller gets them as one batch, with no per-message await or dict. Subscribe and
unsubscribe may be called at any time: while disconnected they only record what is wanted, and
every (re)connect subscribes all of it, which the caller sees as ``Connected`` and then fresh
confirmations, its cue to catch up from history. A permanent control channel keeps the
connection subscribed when no client channel is, and a silent dead peer is found by pinging
when idle.

Behind Sentinel (a ``redis+sentinel://`` URL) every (re)connect asks the sentinels, one after the
other, ``SENTINEL get-master-addr-by-name`` and connects to the master named; while connected it
asks again every ``MASTER_CHECK_SECONDS``, and a master that moved is a disconnect (Sentinel
leaves a demoted master running as one for about 10 s, and its publications stop).

Guarantee: a publication is delivered at most once, in the order Redis sent it; what is published
while the connection is down is lost here, which the caller learns from ``Disconnected``.

``RespLink`` is the socket half (connect and AUTH, batched reads, idle pings), shared with the
Redis Cluster reader in ``cluster_pubsub``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import hiredis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url

from pushgate.broker.jobqueue import MASTER_CHECK_SECONDS, SENTINEL_TIMEOUT
from pushgate.broker.keys import CONTROL_CHANNEL, channel_from_redis, redis_channel
from pushgate.broker.store import decode_live
from pushgate.core.redis_url import SentinelUrl, is_sentinel_url, parse_sentinel_url
from pushgate.core.wire import Publication

# Missing this many ping intervals in a row means the connection is dead.
_DEAD_AFTER_INTERVALS = 3
_READ_SIZE = 256 * 1024
_CONNECT_TIMEOUT = 5.0
# Channels per SUBSCRIBE command when a (re)connect subscribes everything wanted: thousands in a
# few commands, none so long that Redis holds everyone else up parsing it.
RESUBSCRIBE_BATCH = 512


@dataclass(frozen=True, slots=True)
class Confirmed:
    """Redis confirmed a subscribe or unsubscribe of ``channel``."""

    channel: str
    subscribed: bool


@dataclass(frozen=True, slots=True)
class Connected:
    """The connection is (re)established: Redis confirmed its permanent control channel."""


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection broke; the next ``next_events`` reconnects and resubscribes."""

    reason: str


LiveEvent = Publication | Confirmed | Connected | Disconnected


class PubSubError(ConnectionError):
    """Redis refused the connection's setup (authentication), or broke the protocol."""


def command(*args: str) -> bytes:
    """A command in RESP, the way every Redis client sends them."""
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        encoded = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(encoded), encoded))
    return b"".join(parts)


class RespLink:
    """One RESP connection read in batches: connect (and AUTH), write commands, and read every
    complete reply that has arrived at once, pinging when idle to find a silent dead peer.
    ``options`` are redis-py's ``parse_url`` options (host, port, TLS, credentials); an idle
    ``read`` wakes up ``wakes_per_ping`` times per ping interval (to run its ``on_wake``)."""

    def __init__(
        self, options: dict[str, Any], *, ping_interval: float, wakes_per_ping: int = 1
    ) -> None:
        self._options = options
        self._wakes_per_ping = wakes_per_ping
        self._wake_interval = ping_interval / wakes_per_ping
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        # Commands asked for in this turn of the event loop, written together at its end: a
        # connect storm subscribes thousands of channels, one write each was a system call each.
        self._outgoing: list[bytes] = []
        self._parser = hiredis.Reader(encoding="utf-8", errors="replace")

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self, address: tuple[str, int] | None = None) -> None:
        """Connect to the options' server, or to ``address`` (the master Sentinel named)."""
        options = self._options
        self._parser = hiredis.Reader(encoding="utf-8", errors="replace")
        try:
            await self._open(options, address)
        except BaseException:
            await self.close()  # a half-open connection must not look connected
            raise

    async def _open(self, options: dict[str, Any], address: tuple[str, int] | None) -> None:
        async with asyncio.timeout(_CONNECT_TIMEOUT):
            if options.get("connection_class") is UnixDomainSocketConnection:
                reader, writer = await asyncio.open_unix_connection(options["path"])
            else:
                use_tls = options.get("connection_class") is SSLConnection
                tls = ssl.create_default_context() if use_tls else None
                host, port = address or (
                    options.get("host", "localhost"),
                    options.get("port", 6379),
                )
                reader, writer = await asyncio.open_connection(host, port, ssl=tls)
            self._reader, self._writer = reader, writer
            if options.get("password"):
                await self._authenticate(options.get("username"), options["password"])

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        self._outgoing.clear()  # meant for this connection (a reconnect sends what it needs)
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def send(self, data: bytes) -> bool:
        """Write ``data``, with every other command of this loop turn; False when
        disconnected."""
        if self._writer is None or self._writer.is_closing():
            return False
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outgoing.append(data)
        return True

    def _flush(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        if outgoing and self._writer is not None and not self._writer.is_closing():
            self._writer.write(b"".join(outgoing))

    async def read(self, on_wake: Callable[[], Awaitable[None]] | None = None) -> list[Any]:
        """Every complete reply that has arrived (errors as ``hiredis.ReplyError``), waiting
        for at least one socket read; raises when the connection broke or went silent, or
        when ``on_wake`` (awaited at every idle wake-up) raises."""
        assert self._reader is not None
        silent = 0  # wake-ups without a byte from Redis
        while True:
            try:
                async with asyncio.timeout(self._wake_interval):
                    data = await self._reader.read(_READ_SIZE)
                break
            except TimeoutError:
                silent += 1
                if silent >= _DEAD_AFTER_INTERVALS * self._wakes_per_ping:
                    raise TimeoutError("no reply to pings on the pub/sub connection") from None
                if silent % self._wakes_per_ping == 0:
                    self.send(command("PING"))
                if on_wake is not None:
                    await on_wake()
        if not data:
            raise ConnectionResetError("redis closed the pub/sub connection")
        self._parser.feed(data)
        replies = []
        while (reply := self._parser.gets()) is not False:
            replies.append(reply)
        return replies

    async def request(self, *args: str) -> Any:
        """Send one command and wait for its reply (before any subscription: nothing else
        arrives meanwhile)."""
        assert self._reader is not None
        self.send(command(*args))
        while (reply := self._parser.gets()) is False:
            data = await self._reader.read(_READ_SIZE)
            if not data:
                raise ConnectionResetError(f"redis closed the connection during {args[0]}")
            self._parser.feed(data)
        return reply

    async def _authenticate(self, username: str | None, password: str) -> None:
        args = ("AUTH", username, password) if username else ("AUTH", password)
        reply = await self.request(*args)
        if isinstance(reply, hiredis.ReplyError):
            await self.close()
            raise PubSubError(f"redis refused AUTH: {reply}")


class PubSubConnection:
    """Subscribe and unsubscribe from any task; exactly one task may call ``next_events``."""

    def __init__(
        self,
        redis_url: str,
        *,
        ping_interval: float,
        on_master: Callable[[tuple[str, int]], Awaitable[None]] | None = None,
    ) -> None:
        """Behind Sentinel, ``on_master`` is told each master connected to, before anything is
        subscribed there (the gateway's history reads follow it: catch-ups read that master)."""
        self._on_master = on_master
        self._sentinel: SentinelUrl | None = None
        options: dict[str, Any]
        if is_sentinel_url(redis_url):
            self._sentinel = parse_sentinel_url(redis_url)
            options = {"username": self._sentinel.username, "password": self._sentinel.password}
        else:
            options = dict(parse_url(redis_url))
        # Wakes up when idle to ping, and behind Sentinel often enough to check the master.
        every = MASTER_CHECK_SECONDS if self._sentinel else ping_interval
        wakes = max(1, math.ceil(ping_interval / every))
        self._link = RespLink(options, ping_interval=ping_interval, wakes_per_ping=wakes)
        self._master: tuple[str, int] | None = None
        self._master_checked = 0.0
        self._names: set[str] = {CONTROL_CHANNEL}  # what we want subscribed, by Redis name
        self._down = True  # next_events connects first

    async def start(self) -> None:
        await self._connect()

    async def close(self) -> None:
        self._down = True
        await self._link.close()

    def subscribe(self, channel: str) -> bool:
        """Ask Redis to subscribe; False when disconnected (the reconnect will do it)."""
        name = redis_channel(channel)
        self._names.add(name)
        return self._link.send(command("SUBSCRIBE", name))

    def unsubscribe(self, channel: str) -> bool:
        name = redis_channel(channel)
        self._names.discard(name)
        return self._link.send(command("UNSUBSCRIBE", name))

    def serves(self, channel: str) -> bool:
        """Whether a subscribe of ``channel`` can be confirmed while connected: always, one
        connection serves every channel (the cluster reader answers per master)."""
        return True

    async def next_events(self) -> list[LiveEvent]:
        """Wait for the next batch: every complete reply that has arrived, decoded."""
        while True:
            if self._down:
                try:
                    await self._connect()
                except (OSError, PubSubError, TimeoutError) as exc:
                    return [Disconnected(str(exc) or type(exc).__name__)]
            try:
                replies = await self._link.read(self._check_master)
                await self._check_master()
                events = [e for r in replies if (e := _decode(r)) is not None]
            except (OSError, PubSubError, TimeoutError) as exc:
                await self.close()
                return [Disconnected(str(exc) or type(exc).__name__)]
            if events:
                return events

    async def _connect(self) -> None:
        await self._link.connect(await self._master_address() if self._sentinel else None)
        self._down = False
        # Every channel we want, the control channel included, a batch per command:
        # confirmations follow, one per channel.
        names = sorted(self._names)
        self._link.send(
            b"".join(
                command("SUBSCRIBE", *names[start : start + RESUBSCRIBE_BATCH])
                for start in range(0, len(names), RESUBSCRIBE_BATCH)
            )
        )

    async def _master_address(self) -> tuple[str, int]:
        assert self._sentinel is not None
        self._master = await ask_sentinels(self._sentinel)
        self._master_checked = time.monotonic()
        if self._on_master is not None:
            await self._on_master(self._master)
        return self._master

    async def _check_master(self) -> None:
        """Behind Sentinel, at most every ``MASTER_CHECK_SECONDS``: raise ConnectionResetError
        when the sentinels name another master than the one this connection reads."""
        if self._sentinel is None or time.monotonic() - self._master_checked < MASTER_CHECK_SECONDS:
            return
        self._master_checked = time.monotonic()
        try:
            named = await ask_sentinels(self._sentinel)
        except PubSubError:
            return  # no sentinel answers: the connection we have is the best we know
        if named != self._master:
            raise ConnectionResetError(f"the master moved from {self._master} to {named}")


async def ask_sentinels(target: SentinelUrl) -> tuple[str, int]:
    """The master's address from the first sentinel that knows it, asked one after the other."""
    problems: list[str] = []
    for host, port in target.sentinels:
        try:
            async with asyncio.timeout(SENTINEL_TIMEOUT):
                reply = await _ask(
                    host, port, "SENTINEL", "get-master-addr-by-name", target.master_name
                )
        except (OSError, TimeoutError) as exc:
            problems.append(f"{host}:{port}: {exc!r}")
            continue
        if isinstance(reply, list) and len(reply) == 2:
            return str(reply[0]), int(reply[1])
        problems.append(f"{host}:{port}: {reply!r}")
    raise PubSubError(f"no sentinel names master {target.master_name!r}: {'; '.join(problems)}")


async def _ask(host: str, port: int, *args: str) -> Any:
    """One command on a connection of its own, and its reply."""
    link = RespLink({"host": host, "port": port}, ping_interval=SENTINEL_TIMEOUT)
    await link.connect()
    try:
        return await link.request(*args)
    finally:
        await link.close()


def _decode(reply: Any) -> LiveEvent | None:
    if isinstance(reply, hiredis.ReplyError):
        raise PubSubError(f"redis error on the pub/sub connection: {reply}")
    if not isinstance(reply, list) or len(reply) < 2:
        return None
    kind, name = reply[0], reply[1]
    if name == CONTROL_CHANNEL:  # subscribed on every (re)connect, and only then
        return Connected() if kind == "subscribe" else None
    if kind == "pong":
        return None  # a keepalive answer
    if kind == "message":
        return decode_live(name, reply[2])
    if kind in ("subscribe", "unsubscribe"):
        return Confirmed(channel_from_redis(name), subscribed=kind == "subscribe")
    return None
