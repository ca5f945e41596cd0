"""The arq queue shared by gateway (enqueues) and worker (runs): names and JSON serialization.

JSON instead of arq's default pickle: whoever can write to Redis must not run code in workers.
"""

from __future__ import annotations

import json
import time
from typing import Any

from arq.connections import ArqRedis, RedisSettings
from arq.constants import in_progress_key_prefix, retry_key_prefix
from redis import exceptions
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool

from pushgate.broker.keys import QUEUE_NAME
from pushgate.core.redis_url import SentinelUrl, is_sentinel_url, parse_sentinel_url

SCRAPE_TASK = "scrape"
# What redis-py raises when Redis cannot be reached or stops answering (a restarting Redis that
# is still loading its data answers with BusyLoadingError, a ConnectionError).
UNAVAILABLE: tuple[type[Exception], ...] = (exceptions.ConnectionError, exceptions.TimeoutError)


def serialize(data: dict[str, Any]) -> bytes:
    # default=str: a failed job's result is an exception; arq stores its text, not a pickle.
    return json.dumps(data, default=str).encode()


def deserialize(raw: bytes) -> dict[str, Any]:
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("arq job payload is not a JSON object")
    return data


class NotReplicatedError(exceptions.ConnectionError):
    """Fewer replicas than asked for acknowledged a write in time: a failover now could lose
    it. A ConnectionError, so that it is retried and answered as Redis being unavailable."""


# Sentinel: how often a client asks the sentinels where the master is, and the bound on asking.
MASTER_CHECK_SECONDS = 1.0
SENTINEL_TIMEOUT = 1.0
# Written before each WAIT: WAIT counts the replicas that have this connection's last write.
_FENCE_KEY = "pushgate:replication-fence"


def connect(redis_url: str, *, socket_timeout: float | None = None) -> ArqRedis:
    """A Redis client (bytes replies) that can also enqueue arq jobs; connects lazily.

    ``socket_timeout`` bounds each reply, for clients that never block on Redis on purpose.
    A ``redis+sentinel://`` URL gives a client of the master the sentinels name, which follows
    it when it moves (``FollowingPool``).
    """
    options: dict[str, Any] = {"socket_keepalive": True, "socket_timeout": socket_timeout}
    if is_sentinel_url(redis_url):
        pool: ConnectionPool = _sentinel_pool(parse_sentinel_url(redis_url), options)
    else:
        pool = ConnectionPool.from_url(redis_url, **options)
    return ArqRedis(
        pool,
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name=QUEUE_NAME,
    )


def _sentinel_pool(target: SentinelUrl, options: dict[str, Any]) -> FollowingPool:
    timeouts = {"socket_timeout": SENTINEL_TIMEOUT, "socket_connect_timeout": SENTINEL_TIMEOUT}
    sentinel = Sentinel(target.sentinels, sentinel_kwargs=timeouts)  # type: ignore[no-untyped-call]
    credentials = {"db": target.db, "username": target.username, "password": target.password}
    return FollowingPool(target.master_name, sentinel, **options, **credentials)


class FollowingPool(SentinelConnectionPool):
    """redis-py's Sentinel pool asks the sentinels only when it opens a connection, so its open
    connections keep writing to a demoted master until Sentinel reconfigures it (about 10 s
    after a failover, measured): writes that the next resync throws away. This pool asks at
    most every ``MASTER_CHECK_SECONDS`` when a connection is taken, and a connection to any
    other than the master it knows is reconnected when it is taken. (Not while in use: closing
    a connection under another task's command breaks redis-py with AttributeErrors; that one
    command may still reach the old master.)
    """

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        self._checked_at = -MASTER_CHECK_SECONDS

    async def get_connection(self, *args: Any, **options: Any) -> Any:
        if time.monotonic() - self._checked_at >= MASTER_CHECK_SECONDS:
            self._checked_at = time.monotonic()
            await self._follow_master()
        connection = await super().get_connection(*args, **options)  # as given: some deprecated
        try:
            if self.master_address and (connection.host, connection.port) != self.master_address:
                await connection.disconnect()
                await connection.connect()  # to the master the sentinels name now
        except BaseException:
            await self.release(connection)
            raise
        return connection

    async def disconnect(self, inuse_connections: bool = True) -> None:
        await super().disconnect(inuse_connections)
        if inuse_connections:  # closing: the sentinels' clients too, nothing else closes them
            for sentinel in self.sentinel_manager.sentinels:
                await sentinel.connection_pool.disconnect()

    async def follow(self, address: tuple[str, int]) -> None:
        """Use the master at ``address`` from now on (idle connections to another close now)."""
        self._checked_at = time.monotonic()
        if address != self.master_address:
            self.master_address = address
            await super().disconnect(inuse_connections=False)

    async def _follow_master(self) -> None:
        try:
            address = await self.sentinel_manager.discover_master(self.service_name)
        except MasterNotFoundError:
            return  # no sentinel answers: keep the connections we have, they report for us
        await self.follow(address)


async def follow_master(redis: Redis, address: tuple[str, int]) -> None:
    """Make ``redis`` use the master at ``address`` now (the gateway's pub/sub reader found it),
    so that what is read after a reconnect comes from the master the reader listens to."""
    pool = redis.connection_pool
    if isinstance(pool, FollowingPool):
        await pool.follow(address)


async def master_address(redis: Redis) -> str | None:
    """``host:port`` of the master the sentinels name now; None without Sentinel."""
    pool = redis.connection_pool
    if not isinstance(pool, SentinelConnectionPool):
        return None
    host, port = await pool.sentinel_manager.discover_master(pool.service_name)
    return f"{host}:{port}"


async def wait_for_replicas(redis: Redis, replicas: int, within: float) -> None:
    """Return once ``replicas`` replicas have every write made so far; NotReplicatedError if
    they do not ``within`` seconds (Redis's WAIT bounds it). 0 replicas: at once."""
    if replicas <= 0:
        return
    # One connection for both: the fence is this connection's last write, after every write
    # that came before this call on any connection.
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(_FENCE_KEY, b"", px=60_000)
        pipe.wait(replicas, round(within * 1000))
        _ok, acknowledged = await pipe.execute()
    if int(acknowledged) < replicas:
        raise NotReplicatedError(
            f"{acknowledged} of {replicas} replicas acknowledged the write within {within:g} s"
        )


def arq_settings(redis_url: str) -> RedisSettings:
    """arq's own settings for ``redis_url`` (what ``arq --check`` connects with)."""
    if not is_sentinel_url(redis_url):
        return RedisSettings.from_dsn(redis_url)
    target = parse_sentinel_url(redis_url)
    return RedisSettings(
        host=list(target.sentinels),
        sentinel=True,
        sentinel_master=target.master_name,
        database=target.db,
        username=target.username,
        password=target.password,
    )


async def enqueue_scrape(redis: ArqRedis, request_id: str, url: str) -> None:
    """Queue the scrape once: the arq job id is the request id, so a repeat is a no-op."""
    await redis.enqueue_job(SCRAPE_TASK, request_id, url, _job_id=request_id)


# arq marks a running job with an in-progress key (no other worker starts the job while it
# exists) and counts its tries in a retry key, incremented at every start.


async def renew_lease(redis: Redis, job_id: str, seconds: float) -> None:
    """Make arq's in-progress mark of a running job lapse ``seconds`` from now."""
    await redis.pexpire(in_progress_key_prefix + job_id, round(seconds * 1000))


async def give_back_try(redis: Redis, job_id: str, job_try: int) -> None:
    """Uncount try ``job_try`` of a job about to be re-queued, so its next start is that try."""
    await redis.set(retry_key_prefix + job_id, job_try - 1, keepttl=True, xx=True)


async def queue_depth(redis: Redis) -> tuple[int, float | None]:
    """Jobs waiting in the queue, and how long the oldest has waited (seconds; None if none).

    arq scores each queued job with the time it may run, in milliseconds.
    """
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(QUEUE_NAME)
        pipe.zrange(QUEUE_NAME, 0, 0, withscores=True)
        depth, oldest = await pipe.execute()
    age = max(0.0, time.time() - oldest[0][1] / 1000) if oldest else None
    return int(depth), age
