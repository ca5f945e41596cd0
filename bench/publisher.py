"""The publisher: one process that publishes a phase's publications for any system under test.

``python -m bench.publisher '<spec JSON>'`` connects, prints ``{"ready": true}``, waits for a line
on stdin, publishes, prints a summary and exits. Each system is published to through its own
server-side path, with the same pacing, batching and payloads:

- pushgate: ``pushgate.broker.shards.ShardedStore`` over the spec's Redis URLs (the broker
  shards, in ``PUSHGATE_BROKER_URLS`` order): ``publish`` (one Lua call on the channel's shard:
  XADD to the channel's history + PUBLISH), and ``publish_many`` for a batch (split by shard,
  each shard's part in one call, the shards concurrently), checked against ``publish`` when the
  publisher starts. One URL is the single-Redis layout.
- broadcaster: ``PUBLISH <channel> <message>``, which is all ``broadcast.publish`` does with the
  Redis backend (broadcaster/_backends/redis.py).
- socketio: what ``@socket.io/redis-emitter`` sends for ``emitter.to(channel).emit("pub", data)``:
  ``PUBLISH socket.io#/#<channel># <msgpack [uid, packet, opts]>`` (bench.deps checks the bytes
  against the real emitter).

Plain PUBLISH answers how many subscribers (channels and patterns) Redis handed the message to;
the summary's ``receivers`` adds those up (None for pushgate, whose PUBLISH runs inside Lua).

Every payload is ``{"p": phase, "s": seq, "t": send time, ms since the epoch}``, stamped just
before the publication is handed to Redis.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgpack  # type: ignore[import-untyped]
import uvloop
from redis.asyncio import Redis

from pushgate.broker.shards import Shard, ShardedStore
from pushgate.broker.store import Backend, HistoryPolicy
from pushgate.core.wire import parse_offset

Item = tuple[str, dict[str, Any]]  # (channel, payload)
SOCKETIO_EVENT = "pub"
EMITTER_UID = "emitter"
EVENT_PACKET = 2  # socket.io-parser PacketType.EVENT


def now_ms() -> float:
    return time.time() * 1000


def compact_json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def socketio_emit(room: str, data: object, nsp: str = "/") -> tuple[str, bytes]:
    """(channel, message) of @socket.io/redis-emitter's ``to(room).emit("pub", data)``."""
    packet = {"type": EVENT_PACKET, "data": [SOCKETIO_EVENT, data], "nsp": nsp}
    opts = {"rooms": [room], "flags": {}, "except": []}
    message = msgpack.packb([EMITTER_UID, packet, opts])
    return f"socket.io#{nsp}#{room}#", message


class Sink(Protocol):
    async def publish(self, items: Sequence[Item]) -> int | None:
        """Send ``items``; the subscribers Redis handed them to, when it says."""

    async def close(self) -> None: ...


class PushgateSink:
    def __init__(self, redis_urls: Sequence[str], policy: HistoryPolicy) -> None:
        shards = []
        for index, url in enumerate(redis_urls):
            redis: Redis = Redis.from_url(url)
            shards.append(Shard(index, url, Backend(redis, jobs=policy), redis))
        self._backend = ShardedStore(shards, owned=True)
        self._policy = policy

    async def verify(self, channel: str) -> None:
        """A batch must do what single publishes do: same stream, same epoch."""
        offset, epoch = await self._backend.publish(channel, {"check": 1}, self._policy)
        [(second, second_epoch)] = await self._backend.publish_many(
            [(channel, {"check": 2})], self._policy
        )
        if second_epoch != epoch or parse_offset(second) <= parse_offset(offset):
            raise RuntimeError("Backend.publish_many does not match Backend.publish")
        history = await self._backend.history(channel)
        if [p.data for p in history] != [{"check": 1}, {"check": 2}]:
            raise RuntimeError(f"Backend.publish_many stored {history!r}")

    async def publish(self, items: Sequence[Item]) -> int | None:
        if len(items) == 1:
            channel, data = items[0]
            await self._backend.publish(channel, data, self._policy)
        else:
            await self._backend.publish_many(items, self._policy)
        return None

    async def close(self) -> None:
        await self._backend.aclose()


class RedisPublishSink:
    """Plain PUBLISH: broadcaster's publish, or the Socket.IO emitter's."""

    def __init__(self, redis_url: str, *, socketio: bool) -> None:
        self._redis: Redis = Redis.from_url(redis_url)
        self._socketio = socketio

    def _message(self, channel: str, data: object) -> tuple[str, str | bytes]:
        return socketio_emit(channel, data) if self._socketio else (channel, compact_json(data))

    async def publish(self, items: Sequence[Item]) -> int | None:
        if len(items) == 1:
            return int(await self._redis.publish(*self._message(*items[0])))
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel, data in items:
                pipe.publish(*self._message(channel, data))
            return sum(int(n) for n in await pipe.execute())

    async def close(self) -> None:
        await self._redis.aclose()


def make_sink(system: str, redis_urls: Sequence[str], history: dict[str, int]) -> Sink:
    if system == "pushgate":
        return PushgateSink(redis_urls, HistoryPolicy(history["size"], history["ttl"]))
    [redis_url] = redis_urls  # the peers run on one Redis
    return RedisPublishSink(redis_url, socketio=system == "socketio")


@dataclass(frozen=True)
class Spec:
    system: str
    redis_urls: list[str]  # pushgate: one per broker shard, in shard order
    phase: int
    # fanout: `count` publications on `channel`; rounds: `rounds` x one on each of `channels`
    # (named prefix<first> .. prefix<first + channels - 1>)
    mode: str
    rate: float  # publications/s (fanout) or rounds/s (rounds); 0: as fast as possible
    batch: int
    inflight: int = 4  # batches (pipelines, each on its own connection) sent at once
    channel: str = ""
    count: int = 0
    prefix: str = ""
    channels: int = 0
    rounds: int = 0
    first: int = 0
    max_seconds: float = 300.0
    history_size: int = 100
    history_ttl: int = 600


def schedule(spec: Spec) -> list[list[tuple[str, int]]]:
    """The (channel, seq) pairs of each step; steps are paced by ``rate`` when it is set."""
    if spec.mode == "fanout":
        per_step = 1 if spec.rate > 0 else spec.batch
        seqs = list(range(spec.count))
        return [
            [(spec.channel, s) for s in seqs[i : i + per_step]]
            for i in range(0, len(seqs), per_step)
        ]
    names = [f"{spec.prefix}{spec.first + c}" for c in range(spec.channels)]
    return [[(name, r) for name in names] for r in range(spec.rounds)]


async def run(spec: Spec) -> dict[str, Any]:
    history = {"size": spec.history_size, "ttl": spec.history_ttl}
    sink = make_sink(spec.system, spec.redis_urls, history)
    try:
        if isinstance(sink, PushgateSink):
            await sink.verify(f"bench:publisher-check-{spec.phase}-{spec.first}")
        steps = schedule(spec)
        print(json.dumps({"ready": True}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        return await _publish(spec, sink, steps)
    finally:
        await sink.close()


async def _publish(spec: Spec, sink: Sink, steps: list[list[tuple[str, int]]]) -> dict[str, Any]:
    """Send every step's publications in batches, up to ``spec.inflight`` batches at once."""
    cpu_began, began = time.process_time(), time.monotonic()
    slots = asyncio.Semaphore(spec.inflight)
    sending: set[asyncio.Task[None]] = set()
    first_send: float | None = None
    published, behind_ms = 0, 0.0
    receivers: list[int | None] = []

    async def send(items: list[Item]) -> None:
        try:
            receivers.append(await sink.publish(items))
        finally:
            slots.release()

    for index, step in enumerate(steps):
        if spec.rate > 0:
            delay = began + index / spec.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                behind_ms = max(behind_ms, -delay * 1000)
        if time.monotonic() - began > spec.max_seconds:
            break
        for start in range(0, len(step), spec.batch):
            await slots.acquire()
            items: list[Item] = [
                (channel, {"p": spec.phase, "s": seq, "t": now_ms()})
                for channel, seq in step[start : start + spec.batch]
            ]
            first_send = first_send if first_send is not None else items[0][1]["t"]
            task = asyncio.create_task(send(items))
            sending.add(task)
            task.add_done_callback(sending.discard)
            published += len(items)
    await asyncio.gather(*sending)
    elapsed = time.monotonic() - began
    return {
        "published": published,
        "first_send_ms": first_send,
        "last_send_ms": now_ms(),
        "elapsed_s": elapsed,
        "cpu_s": time.process_time() - cpu_began,
        "behind_ms": behind_ms,
        "receivers": None if None in receivers else sum(n or 0 for n in receivers),
    }


def main() -> None:
    spec = Spec(**json.loads(sys.argv[1]))
    print(json.dumps(uvloop.run(run(spec))), flush=True)


if __name__ == "__main__":
    main()
