"""One sync Redis client per process and one asyncio client per event loop, each over a bounded
pool that makes a caller wait for a free connection instead of failing."""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any

import redis
import redis.asyncio as aioredis
from django.conf import settings

from jobs.overload import RedisPoolExhausted

_sync_client: redis.Redis | None = None
_sync_lock = threading.Lock()
# Keyed by loop: an asyncio connection cannot be shared between event loops (tests and
# async_to_sync create their own loops).
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)


def _pool_options() -> dict[str, Any]:
    # redis-py's default pool raises "Too many connections" the moment its 100 are in use, which
    # refused requests under a few hundred clients while Redis was fine. The blocking pool keeps
    # the bound (Redis limits its clients too) and queues the caller for up to the timeout.
    return {
        "max_connections": settings.SPOOL["REDIS_MAX_CONNECTIONS"],
        "timeout": settings.SPOOL["REDIS_POOL_TIMEOUT_SECONDS"],
    }


class _WaitingPool(aioredis.BlockingConnectionPool):
    """A blocking pool whose timeout says the pool was busy, not that Redis is down."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().get_connection(*args, **kwargs)
        except redis.ConnectionError as exc:
            if isinstance(exc.__cause__, asyncio.TimeoutError):
                raise RedisPoolExhausted(self.max_connections) from exc
            raise


def sync_redis() -> redis.Redis:
    global _sync_client
    with _sync_lock:
        if _sync_client is None:
            pool = redis.BlockingConnectionPool.from_url(settings.REDIS_URL, **_pool_options())
            _sync_client = redis.Redis(connection_pool=pool, health_check_interval=30)
        return _sync_client


def async_redis() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        pool = _WaitingPool.from_url(settings.REDIS_URL, **_pool_options())
        client = _async_clients[loop] = aioredis.Redis(connection_pool=pool)
    return client
