"""The chunk log's clients across a restart of one Redis Cluster master: a read meets the outage
as a redis.ConnectionError (the faces' 503) once the bounded retries are spent, whatever
redis-py raised, reads go on when the master is back, and a waiting reader's wake-up channel is
subscribed again and heard. A stale slot map or a dropped connection met once is no outage."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
import redis
from redis.crc import key_slot

from jobs import chunklog, redis_clients, wakeup

pytestmark = pytest.mark.cluster

# Bounds each wait so a broken listener fails the test instead of hanging it; not a measurement.
BOUND_SECONDS = 30


def content(text: str) -> dict:
    return {"type": "content", "data": {"content": text}}


@pytest.fixture(autouse=True)
def on_the_cluster(redis_cluster, spool_env):
    spool_env(SPOOL_CHUNKLOG_REDIS_URL=redis_cluster.url)
    spool_env(SPOOL_CHUNKLOG_REDIS_CLUSTER=True)
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


def test_readers_of_jobs_in_two_slots_of_one_master_hear_them_again_after_it_restarts(redis_cluster):
    """One pub/sub connection per node holds the channels of many slots; after the node comes
    back each one must be subscribed again (one SSUBSCRIBE for all of them is refused as
    CROSSSLOT, and the listener then never came back)."""
    first = str(uuid.uuid4())
    home = redis_cluster.node_of(chunklog.wake_channel(first))
    second = next(
        job_id
        for job_id in (str(uuid.uuid4()) for _ in range(10_000))
        if redis_cluster.node_of(chunklog.wake_channel(job_id)) is home
        and key_slot(chunklog.wake_channel(job_id).encode())
        != key_slot(chunklog.wake_channel(first).encode())
    )

    async def main() -> list[list]:
        hub = wakeup.hub()
        async with (
            hub.watch(chunklog.wake_channel(first)) as heard_first,
            hub.watch(chunklog.wake_channel(second)) as heard_second,
        ):
            await asyncio.to_thread(redis_cluster.restart, home)
            for event in (heard_first, heard_second):  # woken once subscribed again
                await asyncio.wait_for(event.wait(), BOUND_SECONDS)
                event.clear()
            await chunklog.append_many([(first, [content("one")]), (second, [content("two")])])
            for event in (heard_first, heard_second):  # each append's SPUBLISH
                await asyncio.wait_for(event.wait(), BOUND_SECONDS)
            return [await chunklog.read_since(job_id, 0) for job_id in (first, second)]

    assert asyncio.run(main()) == [[content("one")], [content("two")]]


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


def test_the_sync_client_with_every_master_down_meets_an_outage_not_a_bug(redis_cluster):
    """job_create's limits, the sweeper and the admin use the sync client, commands and pipelines."""
    job_id = str(uuid.uuid4())
    redis_clients.sync_redis().set(chunklog.cancel_key(job_id), b"0")  # the slot map, discovered
    outages = []
    for node in redis_cluster.nodes:
        node.kill()
    try:
        for call in (
            lambda: chunklog.read_all(job_id),
            lambda: chunklog.alive([job_id]),  # a pipeline
        ):
            try:
                call()
            except Exception as exc:  # what reaches the faces, whatever it is
                outages.append(exc)
    finally:
        for node in redis_cluster.nodes:
            node.start()
        redis_cluster.wait_ok()
    assert [type(exc) for exc in outages] == [redis.ConnectionError, redis.ConnectionError], outages


def kill_clients(redis_cluster, kind: str) -> int:
    """Drops every connection of that kind (normal, pubsub) on every node, as a restart of a
    proxy or a network blip would; the nodes themselves stay up."""
    killed = 0
    for node in redis_cluster.nodes:
        killed += redis_cluster.node_client(node).client_kill_filter(_type=kind, skipme=True)
    return killed


def test_reads_after_every_connection_was_dropped_are_sent_again_not_an_outage(redis_cluster):
    job_id = str(uuid.uuid4())

    async def main() -> tuple[int, list, list]:
        await chunklog.append_many([(job_id, [content("before")])])  # connections to every node
        killed = kill_clients(redis_cluster, "normal")
        first = await chunklog.read_since(job_id, 0)  # on a dead connection, then a new one
        kill_clients(redis_cluster, "normal")
        await chunklog.append_many([(job_id, [content("after")])])  # a pipeline, the same
        return killed, first, await chunklog.read_since(job_id, 0)

    killed, first, both = asyncio.run(main())
    assert killed > 0  # the test dropped something
    assert first == [content("before")]
    assert both == [content("before"), content("after")]


def test_a_read_on_a_stale_slot_map_follows_the_move(redis_cluster):
    """The client believes another master serves the job's slot, as after a resharding: the
    read meets MOVED once, and answers."""
    job_id = str(uuid.uuid4())
    key = chunklog.chunks_key(job_id)

    async def main() -> list:
        await chunklog.append_many([(job_id, [content("moved")])])
        client = redis_clients.async_redis()
        home = client.get_node_from_key(key)
        elsewhere = next(n for n in client.get_primaries() if n.name != home.name)
        client.nodes_manager.slots_cache[key_slot(key.encode())] = [elsewhere]
        return await chunklog.read_since(job_id, 0)

    assert asyncio.run(main()) == [content("moved")]


def test_a_wait_after_the_pubsub_connections_were_dropped_reads_and_is_heard_again(redis_cluster):
    """The first wait subscribes on the node's pub/sub connection; once that is dropped, the next
    job's first wait sends its SSUBSCRIBE on the dead connection. That is no outage for the
    reader (it reads the log as usual), and once the listener has reconnected, a wait is heard."""
    first = str(uuid.uuid4())
    home = redis_cluster.node_of(chunklog.wake_channel(first))
    second = next(
        job_id
        for job_id in (str(uuid.uuid4()) for _ in range(10_000))
        if redis_cluster.node_of(chunklog.wake_channel(job_id)) is home
    )

    async def main() -> list:
        hub = wakeup.hub()
        async with hub.watch(chunklog.wake_channel(first)):
            pass
        assert kill_clients(redis_cluster, "pubsub") > 0
        async with hub.watch(chunklog.wake_channel(second)):
            read = await chunklog.read_since(second, 0)  # no exception: the reader goes on
        deadline = asyncio.get_running_loop().time() + BOUND_SECONDS
        tries = 0
        while True:  # each try a wait of its own, as a long-polling reader's next poll is
            tries += 1
            async with hub.watch(chunklog.wake_channel(second)) as event:
                await chunklog.append_many([(second, [content(f"try {tries}")])])
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), 1.0)
            if event.is_set():
                return read
            assert asyncio.get_running_loop().time() < deadline, "never heard again"

    assert asyncio.run(main()) == []  # read without a subscription; then heard again
