"""One sync Redis client per process and one asyncio client per event loop, for Spool's own Redis
(settings.SPOOL.redis.url: chunk logs, wake-ups, limits), a single node or a Redis Cluster.

Each client has a bounded pool that makes a caller wait for a free connection instead of failing,
and a wait past the pool timeout raises RedisPoolExhausted ("overloaded", not "Redis is down").
On a cluster, a command or pipeline that meets a transient cluster error (a stale slot map, a
node restarting, a slot in migration, a dropped connection) is sent again after a short, bounded
backoff; an outage that outlasts it still raises, and the faces answer "cannot reach Redis".

Every outage leaves this module as a redis.ConnectionError, whatever redis-py raised: its cluster
client reports an unreachable cluster with RedisClusterException subclasses, which are not
RedisErrors, so the callers above (the faces' 503, the worker's retries) need to know one family."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import redis
import redis.asyncio as aioredis
from django.conf import settings
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, ClusterPipeline
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.cluster import ClusterPipeline as SyncClusterPipeline
from redis.cluster import RedisCluster
from redis.exceptions import (
    AskError,
    ClusterError,
    CrossSlotTransactionError,
    InvalidPipelineStack,
    MaxConnectionsError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)

from jobs.compat.redis import HiredisPackingConnection, recast_pipeline
from jobs.overload import RedisPoolExhausted

T = TypeVar("T")

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
        "max_connections": settings.SPOOL.redis.max_connections,
        "timeout": settings.SPOOL.redis.pool_timeout_seconds,
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
# RedisClusterException: no node answered a slot-map refresh (RedisClusterUnreachableError from
# redis-py 8.2), or a slot has no node (SlotNotCoveredError).
_TRANSIENT_CLUSTER_ERRORS = (
    redis.ConnectionError,
    redis.TimeoutError,
    ClusterError,
    TryAgainError,
    AskError,
    RedisClusterException,
)
_CLUSTER_RETRIES = 5
# RedisClusterExceptions that say the caller misused the client: bugs, neither retried nor outages.
_CLUSTER_MISUSE = (CrossSlotTransactionError, InvalidPipelineStack)


def _transient(exc: Exception) -> bool:
    # Not the waiting bound's verdict: a busy client is not cured by asking again at once.
    return not isinstance(exc, (RedisPoolExhausted, MaxConnectionsError, *_CLUSTER_MISUSE))


@contextlib.contextmanager
def _outage_as_connection_error() -> Any:
    """Re-raises redis-py's cluster outages, which are not RedisErrors, as redis.ConnectionError."""
    try:
        yield
    except RedisClusterException as exc:
        if isinstance(exc, _CLUSTER_MISUSE):
            raise
        raise redis.ConnectionError(f"cannot reach the Redis Cluster: {exc}") from exc


async def _nothing_to_undo(error: Exception) -> None:
    """Retry's cleanup between attempts: each attempt refreshes a stale slot map itself."""


def _waiting_pool(url: str, options: dict[str, Any]) -> _WaitingPool:
    pool = _WaitingPool.from_url(url, **options)
    if pool.connection_class is aioredis.Connection:  # not TLS or a Unix socket
        pool.connection_class = HiredisPackingConnection
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
            ExponentialBackoff(cap=0.4, base=0.025), _CLUSTER_RETRIES, _TRANSIENT_CLUSTER_ERRORS
        )

    @contextlib.asynccontextmanager
    async def turn(self) -> Any:
        """Wait for one of the bounded connections. The slot map is refreshed inside the retries
        (retrying()): a refresh that meets a dropped connection or a MOVED is tried again too."""
        if _holding.get():
            yield
            return
        try:
            await asyncio.wait_for(self._free.acquire(), self._pool_timeout)
        except TimeoutError as exc:
            raise RedisPoolExhausted(self._bound) from exc
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
                    await self.initialize()

    async def retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Runs attempt within a turn, with the slot map fresh, again after a transient error;
        an outage that outlasts the retries is raised as redis.ConnectionError."""

        async def fresh_attempt() -> T:
            await self.rediscover_if_stale()
            return await attempt()

        async with self.turn():
            with _outage_as_connection_error():
                return await self.transient_retry.call_with_retry(
                    fresh_attempt, _nothing_to_undo, is_retryable=_transient
                )

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        command = super().execute_command
        return await self.retrying(lambda: command(*args, **dict(kwargs)))

    async def node_of(self, key: str) -> ClusterNode:
        """The node that serves key's slot, from a slot map discovered if need be."""

        async def lookup() -> ClusterNode:
            node = self.get_node_from_key(key)
            if node is None:  # a transient hole in the slot map: retried, then an outage
                raise SlotNotCoveredError(f"no node serves the slot of {key!r}")
            return node

        return await self.retrying(lookup)

    def node_pubsub(self, node: ClusterNode) -> PubSub:
        """A pub/sub connection of its own to node (see own_pubsub)."""
        return own_pubsub(node.connection_class, node.connection_kwargs)

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
            replies = await super(_WaitingPipeline, self).execute(raise_on_error, allow_redirections)
            # With raise_on_error off, redis-py hands a dropped connection back as a reply: raised
            # here, so the whole pipeline is sent again like any other transient failure.
            lost = next(
                (r for r in replies if isinstance(r, redis.ConnectionError | redis.TimeoutError)), None
            )
            if lost is not None:
                raise lost
            return replies

        return await client.retrying(attempt)


class _SyncCluster(RedisCluster):
    """redis-py's sync cluster client, whose outages are redis.ConnectionErrors as on the async one.
    Its own retries stay on: its callers (job creation's limits, the sweeper, the admin) are
    few and not on the chunk path."""

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        with _outage_as_connection_error():
            return super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> SyncClusterPipeline:
        return recast_pipeline(super().pipeline(transaction, shard_hint), _SyncClusterPipeline)


class _SyncClusterPipeline(SyncClusterPipeline):
    def execute(self, raise_on_error: bool = True) -> list[Any]:
        with _outage_as_connection_error():
            return super().execute(raise_on_error)


def sync_redis() -> Any:
    """redis.Redis, or redis.cluster.RedisCluster when the chunk log's Redis is a cluster."""
    global _sync_client
    with _sync_lock:
        if _sync_client is None:
            url = settings.SPOOL.redis.url
            if settings.SPOOL.redis.cluster:
                # Each node's pool waits for a free connection, as on a single node.
                _sync_client = _SyncCluster.from_url(
                    url, connection_pool_class=redis.BlockingConnectionPool, **_pool_options()
                )
            else:
                pool = redis.BlockingConnectionPool.from_url(url, **_pool_options())
                _sync_client = redis.Redis(connection_pool=pool, health_check_interval=30)
        return _sync_client


def own_pubsub(connection_class: type, connection_kwargs: dict[str, Any]) -> PubSub:
    """A pub/sub connection on a pool of its own, which redis-py never reconnects by itself: the
    wake-up hub's listener is the one task that does. redis-py's PubSub reconnects a connection
    from inside any failed command (its failure callback disconnects and connects even with
    zero retries), so a subscribe sent on a dropped connection reconnected it while the
    listener, failing on the same connection, reconnected it too: two handshakes read one socket
    ("read() called while another coroutine is already waiting for incoming data"). A retry
    that supports no error makes every failure reach the caller as it is."""
    options = {**connection_kwargs, "retry": Retry(NoBackoff(), 0, supported_errors=())}
    options.update(retry_on_error=[], retry_on_timeout=False)
    pool = aioredis.ConnectionPool(connection_class=connection_class, **options)
    return aioredis.Redis(connection_pool=pool).pubsub()


def async_redis() -> Any:
    """redis.asyncio.Redis, or redis.asyncio.cluster.RedisCluster on a cluster."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        url = settings.SPOOL.redis.url
        options = _pool_options()
        if settings.SPOOL.redis.cluster:
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
