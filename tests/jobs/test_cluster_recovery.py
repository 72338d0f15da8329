"""The chunk log's async clients across a restart of one Redis Cluster master: a read meets the
outage as an error (the faces' 503) once the bounded retries are spent, reads go on when the
master is back, and a waiting reader's wake-up channel is subscribed again and heard."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis

from jobs import chunklog, redis_clients, wakeup

pytestmark = pytest.mark.cluster

# Bounds each wait so a broken listener fails the test instead of hanging it; not a measurement.
BOUND_SECONDS = 30


def content(text: str) -> dict:
    return {"type": "content", "data": {"content": text}}


@pytest.fixture(autouse=True)
def on_the_cluster(redis_cluster, settings):
    settings.CHUNKLOG_REDIS_URL = redis_cluster.url
    settings.CHUNKLOG_REDIS_CLUSTER = True
    redis_clients.forget_clients()
    yield
    redis_clients.forget_clients()


def test_a_waiting_reader_hears_its_job_again_after_the_master_restarts(redis_cluster):
    job_id = str(uuid.uuid4())
    channel = chunklog.wake_channel(job_id)
    home = redis_cluster.node_of(channel)

    async def main() -> tuple[list, list]:
        async with wakeup.hub().watch(channel) as event:
            await asyncio.to_thread(redis_cluster.restart, home)
            # Woken once its channel is subscribed again, to read what it may have missed.
            await asyncio.wait_for(event.wait(), BOUND_SECONDS)
            missed = await chunklog.read_since(job_id, 0)
            event.clear()
            await chunklog.append_many([(job_id, [content("after")])])
            await asyncio.wait_for(event.wait(), BOUND_SECONDS)  # the append's SPUBLISH
            return missed, await chunklog.read_since(job_id, 0)

    assert asyncio.run(main()) == ([], [content("after")])


def test_a_read_while_the_master_is_down_raises_and_reads_go_on_once_it_is_back(redis_cluster):
    job_id = str(uuid.uuid4())
    home = redis_cluster.node_of(chunklog.chunks_key(job_id))

    async def main() -> tuple[BaseException | None, list, chunklog.LiveState]:
        await chunklog.append_many([(job_id, [content("before")])])  # connections to every node
        home.kill()
        try:
            outage: BaseException | None = None
            try:
                await chunklog.read_since(job_id, 0)
            except redis.RedisError as exc:
                outage = exc
        finally:
            await asyncio.to_thread(redis_cluster.restart, home)
        # The client still holds the dead master's connections and an old slot map.
        await chunklog.append_many([(job_id, [content("after")])])
        return outage, await chunklog.read_since(job_id, 0), await chunklog.read_live(job_id)

    outage, chunks, live = asyncio.run(main())
    assert isinstance(outage, redis.ConnectionError)
    assert not isinstance(outage, redis_clients.RedisPoolExhausted)  # an outage, not "overloaded"
    assert chunks == [content("after")]  # the restarted master came back empty
    assert live.last == content("after")


def test_a_read_with_every_master_down_is_an_outage_not_a_bug(redis_cluster):
    """With no node to rediscover the cluster from, redis-py raises RedisClusterException, which
    is not a RedisError: the faces would answer 500. It must reach them as a connection error."""
    job_id = str(uuid.uuid4())

    async def main() -> BaseException | None:
        await chunklog.append_many([(job_id, [content("before")])])
        for node in redis_cluster.nodes:
            node.kill()
        try:
            await chunklog.read_since(job_id, 0)
        except Exception as exc:  # what reaches the faces, whatever it is
            return exc
        finally:
            for node in redis_cluster.nodes:
                node.start()
            redis_cluster.wait_ok()
        return None

    outage = asyncio.run(main())
    assert isinstance(outage, redis.ConnectionError)
    assert not isinstance(outage, redis_clients.RedisPoolExhausted)
