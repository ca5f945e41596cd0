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


class PubSubConnection:
    """Subscribe and unsubscribe from any task; exactly one task may call ``next_events``."""

    def __init__(self, redis_url: str, *, ping_interval: float) -> None:
        self._options: dict[str, Any] = dict(parse_url(redis_url))
        self._ping_interval = ping_interval
        self._names: set[str] = {CONTROL_CHANNEL}  # what we want subscribed, by Redis name
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        # Commands asked for in this turn of the event loop, written together at its end: a
        # connect storm subscribes thousands of channels, one write each was a system call each.
        self._outgoing: list[bytes] = []
        self._parser = hiredis.Reader(encoding="utf-8", errors="replace")

    async def start(self) -> None:
        await self._connect()

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        self._outgoing.clear()  # meant for this connection; a reconnect subscribes _names anew
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def subscribe(self, channel: str) -> bool:
        """Ask Redis to subscribe; False when disconnected (the reconnect will do it)."""
        name = redis_channel(channel)
        self._names.add(name)
        return self._send(command("SUBSCRIBE", name))

    def unsubscribe(self, channel: str) -> bool:
        name = redis_channel(channel)
        self._names.discard(name)
        return self._send(command("UNSUBSCRIBE", name))

    def _send(self, data: bytes) -> bool:
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

    async def next_events(self) -> list[LiveEvent]:
        """Wait for the next batch: every complete reply that has arrived, decoded."""
        while True:
            if self._reader is None:
                try:
                    await self._connect()
                except (OSError, PubSubError, TimeoutError) as exc:
                    return [Disconnected(str(exc) or type(exc).__name__)]
            try:
                events = await self._read()
            except (OSError, PubSubError, TimeoutError) as exc:
                await self.close()
                return [Disconnected(str(exc) or type(exc).__name__)]
            if events:
                return events

    async def _read(self) -> list[LiveEvent]:
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
                self._send(command("PING"))
        if not data:
            raise ConnectionResetError("redis closed the pub/sub connection")
        self._parser.feed(data)
        events: list[LiveEvent] = []
        while (reply := self._parser.gets()) is not False:
            event = _decode(reply)
            if event is not None:
                events.append(event)
        return events

    async def _connect(self) -> None:
        options = self._options
        self._parser = hiredis.Reader(encoding="utf-8", errors="replace")
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
        # Every channel we want, the control channel included: confirmations follow.
        writer.write(b"".join(command("SUBSCRIBE", name) for name in sorted(self._names)))

    async def _authenticate(self, username: str | None, password: str) -> None:
        assert self._reader is not None
        assert self._writer is not None
        args = ("AUTH", username, password) if username else ("AUTH", password)
        self._writer.write(command(*args))
        while (reply := self._parser.gets()) is False:
            data = await self._reader.read(_READ_SIZE)
            if not data:
                raise ConnectionResetError("redis closed the connection during AUTH")
            self._parser.feed(data)
        if isinstance(reply, hiredis.ReplyError):
            await self.close()
            raise PubSubError(f"redis refused AUTH: {reply}")


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
