"""The chunk log's Redis clients on a Redis Cluster: callers wait for a connection as on one node,
and a wait past the pool timeout says "overloaded", not "Redis is down"."""

from __future__ import annotations

import asyncio

import pytest

from jobs import redis_clients
from jobs.overload import RedisPoolExhausted, is_overload


@pytest.fixture
def small_cluster_pool(spool_env, redis_cluster):
    spool_env(SPOOL_CHUNKLOG_REDIS_URL=redis_cluster.url)
    spool_env(SPOOL_CHUNKLOG_REDIS_CLUSTER=True)
    spool_env(SPOOL_REDIS_MAX_CONNECTIONS=2, SPOOL_REDIS_POOL_TIMEOUT_SECONDS=0.5)
    redis_clients.forget_clients()
    yield
    redis_clients.forget_clients()


def test_a_hundred_callers_share_two_connections_by_waiting(small_cluster_pool):
    async def main():
        client = redis_clients.async_redis()
        return await asyncio.gather(*(client.lrange(f"spooltest:{{{i}}}:nothing", 0, -1) for i in range(100)))

    assert asyncio.run(main()) == [[]] * 100


def test_a_caller_that_waits_past_the_pool_timeout_is_told_spool_is_overloaded(small_cluster_pool):
    async def main():
        client = redis_clients.async_redis()
        release = asyncio.Event()
        holding = 0

        async def hold() -> None:
            nonlocal holding
            async with client.turn():
                holding += 1
                await release.wait()

        holders = [asyncio.create_task(hold()) for _ in range(2)]
        while holding < 2:
            await asyncio.sleep(0.01)
        try:
            with pytest.raises(RedisPoolExhausted) as refused:
                await client.get("spooltest:{x}:nothing")
        finally:
            release.set()
            await asyncio.gather(*holders)
        return refused.value, await client.get("spooltest:{x}:nothing")

    refused, after = asyncio.run(main())
    assert is_overload(refused) and after is None
