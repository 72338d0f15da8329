"""One sync Redis client per process and one asyncio client per event loop, for Spool's own Redis
(settings.CHUNKLOG_REDIS_URL: chunk logs, wake-ups, limits), a single node or a Redis Cluster.

Each client has a bounded pool that makes a caller wait for a free connection instead of failing,
and a wait past the pool timeout raises RedisPoolExhausted ("overloaded", not "Redis is down").
On a cluster, a command or pipeline that meets a transient cluster error (a stale slot map, a
node restarting, a slot in migration) is sent again after a short, bounded backoff; an outage
that outlasts it still raises, and the faces answer "cannot reach Redis"."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import weakref
from typing import Any, cast

import hiredis
import redis
import redis.asyncio as aioredis
from django.conf import settings
from redis.asyncio.cluster import ClusterPipeline
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.cluster import RedisCluster
from redis.connection import HiredisRespSerializer
from redis.exceptions import (
    AskError,
    ClusterError,
    MaxConnectionsError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)

from jobs.overload import RedisPoolExhausted

_sync_client: redis.Redis | RedisCluster | None = None
_sync_lock = threading.Lock()
# Keyed by loop: an asyncio connection cannot be shared between event loops (tests and
# async_to_sync create their own loops).
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()


def _pool_options() -> dict[str, Any]:
    # redis-py's default pool raises "Too many connections" the moment its 100 are in use, which
    # refused requests under a few hundred clients while Redis was fine. The blocking pool keeps
    # the bound (Redis limits its clients too) and queues the caller for up to the timeout.
    return {
        "max_connections": settings.SPOOL["REDIS_MAX_CONNECTIONS"],
        "timeout": settings.SPOOL["REDIS_POOL_TIMEOUT_SECONDS"],
    }


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster | AsyncRedisCluster)


class _WaitingPool(aioredis.BlockingConnectionPool):
    """A blocking pool whose timeout says the pool was busy, not that Redis is down."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().get_connection(*args, **kwargs)
        except redis.ConnectionError as exc:
            if isinstance(exc.__cause__, asyncio.TimeoutError):
                raise RedisPoolExhausted(self.max_connections) from exc
            raise


# What a cluster client sends again. redis-py's own cluster retries (10 attempts) come with no
# pause for a command, and with a 0.25 s pause plus a close of every connection (other tasks'
# too) for a pipeline; MOVED / ASK / TRYAGAIN end in "TTL exhausted" when they outlast a slot map
# refresh. The e2e suite once saw a poll on the cluster answered "cannot reach Redis" while the
# cluster was healthy. Ours: 5 retries after 25, 50, 100, 200, 400 ms (under 1 s in all, then
# the outage is real), each after one slot map refresh shared by every waiting task.
# ClusterError covers CLUSTERDOWN and "TTL exhausted"; AskError covers MOVED.
_TRANSIENT_CLUSTER_ERRORS = (
    redis.ConnectionError,
    redis.TimeoutError,
    ClusterError,
    TryAgainError,
    AskError,
    SlotNotCoveredError,
)
_CLUSTER_RETRIES = 5


def _transient(exc: Exception) -> bool:
    # Not the waiting bound's verdict: a busy client is not cured by asking again at once.
    return not isinstance(exc, RedisPoolExhausted | MaxConnectionsError)


async def _nothing_to_undo(error: Exception) -> None:
    """Retry's cleanup between attempts: each attempt refreshes a stale slot map itself."""


class _HiredisPackingConnection(aioredis.Connection):
    """Packs commands in C with hiredis, as redis-py's sync client does; its asyncio client packs
    them in Python, which was 6% of a busy worker's samples (one EVALSHA per job per batch)."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str) and " " in args[0]:  # "SCRIPT LOAD": two words on the wire
            args = (*args[0].split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:  # a memoryview or bytearray: redis-py's own serializer converts them
            return HiredisRespSerializer().pack(*args)


def _waiting_pool(url: str, options: dict[str, Any]) -> _WaitingPool:
    pool = _WaitingPool.from_url(url, **options)
    if pool.connection_class is aioredis.Connection:  # not TLS or a Unix socket
        pool.connection_class = _HiredisPackingConnection
    return pool


# Set while a task holds a turn of a cluster client, so the commands redis-py itself sends
# inside a pipeline (redirections) do not queue for a second one.
_holding = contextvars.ContextVar("spool_redis_turn", default=False)


class _WaitingCluster(AsyncRedisCluster):
    """redis-py's asyncio cluster client with a waiting bound, and one (re)initialisation at a
    time. Its node pools have no waiting: past max_connections a node raises
    MaxConnectionsError at once. A semaphore of max_connections over every command and
    pipeline keeps each node below its bound (a pipeline takes at most one connection per
    node), so callers wait instead, as on a single node.

    The lock: when many tasks send their first command at once (or after a node restarted and
    redis-py flagged its slot map stale), each one started its own discovery of the cluster,
    most were answered MOVED, and the rediscoveries closed connections other tasks were using
    ("'NoneType' object has no attribute 'writelines'", redis-py 8.1). One task refreshes the
    map while the others wait for it."""

    def __init__(self, *, pool_timeout: float, **kwargs: Any) -> None:
        # Keywords only, as from_url passes them: a positional argument could also fill `retry`.
        # redis-py's retries off (one attempt, no close-everything between attempts): ours wrap
        # each command and pipeline, with a backoff.
        super().__init__(retry=Retry(NoBackoff(), 0), **kwargs)
        self._bound = kwargs["max_connections"]
        self._free = asyncio.Semaphore(self._bound)
        self._pool_timeout = pool_timeout
        self._discovery = asyncio.Lock()
        self.transient_retry = Retry(
            ExponentialBackoff(cap=0.4, base=0.025),
            _CLUSTER_RETRIES,
            # redis-py annotates RedisError types but catches any exception type it is given;
            # SlotNotCoveredError is a RedisClusterException, which is not a RedisError.
            _TRANSIENT_CLUSTER_ERRORS,  # type: ignore[arg-type]
        )

    @contextlib.asynccontextmanager
    async def turn(self) -> Any:
        """Wait for one of the bounded connections (and for the slot map, when it is stale)."""
        if _holding.get():
            yield
            return
        try:
            await asyncio.wait_for(self._free.acquire(), self._pool_timeout)
        except TimeoutError as exc:
            raise RedisPoolExhausted(self._bound) from exc
        try:
            await self.rediscover_if_stale()
        except BaseException:
            self._free.release()
            raise
        token = _holding.set(True)
        try:
            yield
        finally:
            _holding.reset(token)
            self._free.release()

    async def rediscover_if_stale(self) -> None:
        """Refresh the slot map if redis-py flagged it, one task for all."""
        if self._initialize:  # redis-py's own flag: the slot map is missing or stale
            async with self._discovery:
                if self._initialize:
                    try:
                        await self.initialize()
                    except RedisClusterException as exc:
                        # No node answered (or the slots are not all served): an outage, which
                        # the faces answer 503 "cannot reach Redis", not a bug's 500.
                        raise redis.ConnectionError(f"cannot discover the Redis Cluster: {exc}") from exc

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async def attempt() -> Any:
            await self.rediscover_if_stale()
            return await super(_WaitingCluster, self).execute_command(*args, **dict(kwargs))

        async with self.turn():
            return await self.transient_retry.call_with_retry(
                attempt, _nothing_to_undo, is_retryable=_transient
            )

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        # redis-py's annotations leave an attribute abstract that its __init__ sets.
        return _WaitingPipeline(self, transaction)  # type: ignore[abstract]


class _WaitingPipeline(ClusterPipeline):
    """Keeps what was queued, since redis-py empties the pipeline after a failed execute, so a
    retry sends the same commands again. An append batch sent twice appends once: each append
    names the log length it expects (chunklog.append_many), and the second finds the first's."""

    def __init__(self, client: _WaitingCluster, transaction: Any) -> None:
        super().__init__(client, transaction)
        self._queued: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        self._queued.append((args, dict(kwargs)))
        return super().execute_command(*args, **kwargs)

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        client = cast(_WaitingCluster, self.cluster_client)
        queued, self._queued = self._queued, []
        first = True

        async def attempt() -> Any:
            nonlocal first
            if not first:  # the failed execute emptied redis-py's queue
                for args, kwargs in queued:
                    super(_WaitingPipeline, self).execute_command(*args, **dict(kwargs))
            first = False
            await client.rediscover_if_stale()
            return await super(_WaitingPipeline, self).execute(raise_on_error, allow_redirections)

        async with client.turn():
            return await client.transient_retry.call_with_retry(
                attempt, _nothing_to_undo, is_retryable=_transient
            )


def sync_redis() -> Any:
    """redis.Redis, or redis.cluster.RedisCluster when the chunk log's Redis is a cluster."""
    global _sync_client
    with _sync_lock:
        if _sync_client is None:
            url = settings.CHUNKLOG_REDIS_URL
            if settings.CHUNKLOG_REDIS_CLUSTER:
                # Each node's pool waits for a free connection, as on a single node.
                _sync_client = RedisCluster.from_url(
                    url, connection_pool_class=redis.BlockingConnectionPool, **_pool_options()
                )
            else:
                pool = redis.BlockingConnectionPool.from_url(url, **_pool_options())
                _sync_client = redis.Redis(connection_pool=pool, health_check_interval=30)
        return _sync_client


def async_redis() -> Any:
    """redis.asyncio.Redis, or redis.asyncio.cluster.RedisCluster on a cluster."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        url = settings.CHUNKLOG_REDIS_URL
        options = _pool_options()
        if settings.CHUNKLOG_REDIS_CLUSTER:
            client = _WaitingCluster.from_url(
                url, max_connections=options["max_connections"], pool_timeout=options["timeout"]
            )
        else:
            client = aioredis.Redis(connection_pool=_waiting_pool(url, options))
        _async_clients[loop] = client
    return client


def forget_clients() -> None:
    """Drop the clients so the next call builds them from the settings again (tests that point
    the chunk log at another Redis)."""
    global _sync_client
    with _sync_lock:
        if _sync_client is not None:
            _sync_client.close()
        _sync_client = None
    _async_clients.clear()
