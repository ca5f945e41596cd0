"""The one Redis pub/sub connection of a gateway process, as batches of typed events.

A gateway's hottest loop reads this connection, so it is a small RESP client of its own rather
than redis-py's ``PubSub``: one socket read hands every complete reply in the buffer to hiredis at
once, and the caller gets them as one batch, with no per-message await or dict. Subscribe and
unsubscribe may be called at any time: while disconnected they only record what is wanted, and
every (re)connect subscribes all of it, which the caller sees as ``Connected`` and then fresh
confirmations, its cue to catch up from history. A permanent control channel keeps the
connection subscribed when no client channel is, and a silent dead peer is found by pinging
when idle.

Guarantee: a publication is delivered at most once, in the order Redis sent it; what is published
while the connection is down is lost here, which the caller learns from ``Disconnected``.

``RespLink`` is the socket half (connect and AUTH, batched reads, idle pings), shared with the
Redis Cluster reader in ``cluster_pubsub``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from typing import Any

import hiredis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url

from pushgate.broker.keys import CONTROL_CHANNEL, channel_from_redis, redis_channel
from pushgate.broker.store import decode_live
from pushgate.core.wire import Publication

# Missing this many ping intervals in a row means the connection is dead.
_DEAD_AFTER_INTERVALS = 3
_READ_SIZE = 256 * 1024
_CONNECT_TIMEOUT = 5.0


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
    ``options`` are redis-py's ``parse_url`` options (host, port, TLS, credentials)."""

    def __init__(self, options: dict[str, Any], *, ping_interval: float) -> None:
        self._options = options
        self._ping_interval = ping_interval
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._parser = hiredis.Reader(encoding="utf-8", errors="replace")

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self) -> None:
        options = self._options
        self._parser = hiredis.Reader(encoding="utf-8", errors="replace")
        try:
            await self._open(options)
        except BaseException:
            await self.close()  # a half-open connection must not look connected
            raise

    async def _open(self, options: dict[str, Any]) -> None:
        async with asyncio.timeout(_CONNECT_TIMEOUT):
            if options.get("connection_class") is UnixDomainSocketConnection:
                reader, writer = await asyncio.open_unix_connection(options["path"])
            else:
                use_tls = options.get("connection_class") is SSLConnection
                tls = ssl.create_default_context() if use_tls else None
                reader, writer = await asyncio.open_connection(
                    options.get("host", "localhost"), options.get("port", 6379), ssl=tls
                )
            self._reader, self._writer = reader, writer
            if options.get("password"):
                await self._authenticate(options.get("username"), options["password"])

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def send(self, data: bytes) -> bool:
        """Write ``data``; False when disconnected."""
        if self._writer is None or self._writer.is_closing():
            return False
        self._writer.write(data)
        return True

    async def read(self) -> list[Any]:
        """Every complete reply that has arrived (errors as ``hiredis.ReplyError``), waiting
        for at least one socket read; raises when the connection broke or went silent."""
        assert self._reader is not None
        silent = 0
        while True:
            try:
                async with asyncio.timeout(self._ping_interval):
                    data = await self._reader.read(_READ_SIZE)
                break
            except TimeoutError:
                silent += 1
                if silent >= _DEAD_AFTER_INTERVALS:
                    raise TimeoutError("no reply to pings on the pub/sub connection") from None
                self.send(command("PING"))
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

    def __init__(self, redis_url: str, *, ping_interval: float) -> None:
        self._link = RespLink(dict(parse_url(redis_url)), ping_interval=ping_interval)
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

    async def next_events(self) -> list[LiveEvent]:
        """Wait for the next batch: every complete reply that has arrived, decoded."""
        while True:
            if self._down:
                try:
                    await self._connect()
                except (OSError, PubSubError, TimeoutError) as exc:
                    return [Disconnected(str(exc) or type(exc).__name__)]
            try:
                events = [e for r in await self._link.read() if (e := _decode(r)) is not None]
            except (OSError, PubSubError, TimeoutError) as exc:
                await self.close()
                return [Disconnected(str(exc) or type(exc).__name__)]
            if events:
                return events

    async def _connect(self) -> None:
        await self._link.connect()
        self._down = False
        # Every channel we want, the control channel included: confirmations follow.
        self._link.send(b"".join(command("SUBSCRIBE", name) for name in sorted(self._names)))


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
