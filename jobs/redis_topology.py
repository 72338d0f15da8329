"""Whether the chunk log's Redis is what the settings say it is: a Redis Cluster node exactly when
SPOOL_CHUNKLOG_REDIS_CLUSTER is on. Otherwise the mismatch shows only as a 503 "cannot reach
Redis" on every request (a single-node client is answered MOVED by a cluster node; a cluster
client is refused by a plain Redis). Checked at the start of web and worker (scripts/*.sh run
`manage.py check --tag spool`) and by /readyz."""

from __future__ import annotations

import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.core import checks


def mismatch(cluster_enabled: bool) -> str | None:
    """What is wrong, naming the settings, when the node's mode is not the configured one."""
    if cluster_enabled and not settings.SPOOL.redis.cluster:
        return (
            "SPOOL_CHUNKLOG_REDIS_URL names a Redis Cluster node (cluster_enabled:1) but "
            "SPOOL_CHUNKLOG_REDIS_CLUSTER is off: set SPOOL_CHUNKLOG_REDIS_CLUSTER=1."
        )
    if not cluster_enabled and settings.SPOOL.redis.cluster:
        return (
            "SPOOL_CHUNKLOG_REDIS_CLUSTER is on but SPOOL_CHUNKLOG_REDIS_URL names a Redis that is "
            "not a cluster node (cluster_enabled:0): point the URL at a cluster node or unset "
            "SPOOL_CHUNKLOG_REDIS_CLUSTER."
        )
    return None


def _cluster_enabled(info: dict) -> bool:
    return bool(int(info.get("cluster_enabled", 0)))


async def check(timeout: float) -> str | None:
    """The mismatch, if any; raises what the client raises when the node does not answer."""
    url = settings.SPOOL.redis.url
    client = aioredis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return mismatch(_cluster_enabled(await client.info("cluster")))
    finally:
        await client.aclose()


@checks.register("spool")
def startup_check(**_: object) -> list[checks.CheckMessage]:
    """A process that would answer every request 503 refuses to start instead. A Redis that does
    not answer yet is no reason to refuse: the process starts and /readyz names it."""
    client = redis.Redis.from_url(settings.SPOOL.redis.url, socket_connect_timeout=2, socket_timeout=2)
    try:
        problem = mismatch(_cluster_enabled(client.info("cluster")))
    except redis.RedisError:
        return []
    finally:
        client.close()
    return [checks.Error(problem, id="spool.E001")] if problem else []
