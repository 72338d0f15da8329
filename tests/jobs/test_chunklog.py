"""The Redis chunk log: order, cursors, stateful handout, and wake-ups that are never missed; every
test runs on a single Redis and on a real 3-master Redis Cluster."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest
from redis.cluster import key_slot

from jobs import chunklog, redis_clients, wakeup


def content(text: str) -> dict:
    return {"type": "content", "data": {"content": text}}


FINISH = {"type": "finish", "data": {"finish_reason": "stop"}}


@pytest.fixture(autouse=True, params=["redis", "cluster"])
def chunklog_redis(request, spool_env):
    """The chunk log on the test Redis, then on a Redis Cluster (tests/cluster.py)."""
    if request.param == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        spool_env(SPOOL_CHUNKLOG_REDIS_URL=cluster.url)
        spool_env(SPOOL_CHUNKLOG_REDIS_CLUSTER=True)
    redis_clients.forget_clients()
    yield request.param
    redis_clients.forget_clients()


@pytest.fixture
def job_id(redis_clean) -> str:
    return str(uuid.uuid4())


def test_it_keeps_chunks_in_append_order_with_sequence_numbers(job_id):
    chunklog.append(job_id, [content("a"), content("b")])
    chunklog.append(job_id, [content("c")])

    async def main():
        return await chunklog.read_since(job_id, 0), await chunklog.read_since(job_id, 2)

    everything, tail = asyncio.run(main())
    assert [c["data"]["content"] for c in everything] == ["a", "b", "c"]
    assert tail == [content("c")]


def test_a_cursor_read_is_idempotent(job_id):
    chunklog.append(job_id, [content("a"), content("b")])

    async def main():
        return [await chunklog.read_since(job_id, 1) for _ in range(3)]

    assert asyncio.run(main()) == [[content("b")]] * 3


def test_stateful_claims_hand_each_chunk_out_once(job_id):
    chunklog.append(job_id, [content("a"), content("b")])

    async def main():
        first = await chunklog.claim_chunks(job_id, "r")
        second = await chunklog.claim_chunks(job_id, "r")
        chunklog.append(job_id, [content("c")])
        third = await chunklog.claim_chunks(job_id, "r")
        return first, second, third

    first, second, third = asyncio.run(main())
    assert first == (0, [content("a"), content("b")])
    assert second == (2, [])
    assert third == (2, [content("c")])


def test_two_readers_do_not_steal_each_others_chunks(job_id):
    chunklog.append(job_id, [content("a"), content("b")])

    async def main():
        return await chunklog.claim_chunks(job_id, "one"), await chunklog.claim_chunks(job_id, "two")

    one, two = asyncio.run(main())
    assert one == two == (0, [content("a"), content("b")])


def test_concurrent_claims_of_one_reader_never_duplicate_a_chunk(job_id):
    chunklog.append(job_id, [content(str(i)) for i in range(200)])

    async def main():
        pages = await asyncio.gather(*[chunklog.claim_chunks(job_id, "r") for _ in range(50)])
        return [c["data"]["content"] for _, chunks in pages for c in chunks]

    got = asyncio.run(main())
    assert sorted(got, key=int) == [str(i) for i in range(200)]


def test_text_claims_return_new_and_total_text(job_id):
    chunklog.append(job_id, [content("Héllo"), content(" wörld 🎉")])

    async def main():
        first = await chunklog.claim_text(job_id, "p")
        chunklog.append(job_id, [content("!"), FINISH])
        second = await chunklog.claim_text(job_id, "p")
        return first, second

    (new1, total1, last1), (new2, total2, last2) = asyncio.run(main())
    assert (new1, total1) == ("Héllo wörld 🎉", "Héllo wörld 🎉")
    assert last1 == content(" wörld 🎉")
    assert (new2, total2, last2) == ("!", "Héllo wörld 🎉!", FINISH)


def test_blank_new_text_waits_for_more_text_or_the_end(job_id):
    """ai-server-sdk's stream_ask drops a poll whose new text is blank: hold it back."""

    async def claim():
        return (await chunklog.claim_text(job_id, "p"))[:2]

    chunklog.append(job_id, [content("To be")])
    assert asyncio.run(claim()) == ("To be", "To be")
    chunklog.append(job_id, [content("\n")])
    assert asyncio.run(claim()) == ("", "To be")
    chunklog.append(job_id, [content("or")])
    assert asyncio.run(claim()) == ("\nor", "To be\nor")
    chunklog.append(job_id, [content(" "), FINISH])
    assert asyncio.run(claim()) == (" ", "To be\nor ")


def test_append_reports_a_requested_cancel(job_id):
    assert chunklog.append(job_id, [content("a")]) == (False, 1)
    chunklog.request_cancel(job_id)
    assert chunklog.append(job_id, [content("b")]) == (True, 2)
    assert chunklog.append(job_id, []) == (True, -1)


def test_appends_and_claims_go_on_after_redis_forgets_its_scripts(job_id, redis_clean):
    chunklog.append(job_id, [content("a")])
    redis_clean.script_flush()  # what a restart does to the scripts Spool sends by SHA1
    assert chunklog.append(job_id, [content("b")]) == (False, 2)

    async def main():
        await chunklog.async_redis().script_flush()
        return await chunklog.claim_chunks(job_id, "p"), await chunklog.claim_text(job_id, "q")

    (start, chunks), (new, _, last) = asyncio.run(main())
    assert start == 0 and chunks == [content("a"), content("b")] and new == "ab" and last == content("b")


def test_a_batch_longer_than_luas_unpack_limit_is_appended_whole_and_in_order(job_id):
    batch = [content(str(i)) for i in range(10_000)]
    assert chunklog.append(job_id, batch).length == 10_000
    assert asyncio.run(chunklog.read_since(job_id, 0)) == batch


def test_a_rewritten_log_keeps_its_sequence_numbers_and_text(job_id):
    chunklog.append(job_id, [content("a"), content("b")])
    from tests.conftest import clear_redis

    clear_redis()  # what a Redis restart without persistence does

    async def main():
        await chunklog.rewrite(job_id, [content("a"), content("b"), content("c")])
        return await chunklog.read_since(job_id, 2), await chunklog.claim_text(job_id, "p")

    tail, (new, total, _) = asyncio.run(main())
    assert tail == [content("c")] and new == total == "abc"


def test_a_waiting_reader_returns_as_soon_as_a_chunk_lands(job_id):
    def write_later():
        time.sleep(0.3)
        chunklog.append(job_id, [content("late")])

    async def main():
        threading.Thread(target=write_later).start()
        started = time.monotonic()
        got = await wakeup.wait_for(job_id, lambda: chunklog.read_since(job_id, 0), bool, timeout=5)
        return got, time.monotonic() - started

    got, waited = asyncio.run(main())
    assert got == [content("late")]
    assert 0.25 <= waited < 4  # woke on the chunk, long before the 5 s timeout


def test_a_waiting_reader_gives_up_after_its_timeout(job_id):
    async def main():
        started = time.monotonic()
        got = await wakeup.wait_for(job_id, lambda: chunklog.read_since(job_id, 0), bool, timeout=0.3)
        return got, time.monotonic() - started

    got, waited = asyncio.run(main())
    assert got == [] and waited >= 0.3


@pytest.mark.parametrize("standing", [False, True], ids=["subscribed-per-wait", "standing-subscription"])
def test_no_wake_up_is_missed_with_concurrent_writers_and_readers(redis_clean, standing):
    """Many jobs, each written by its own thread in bursts with random gaps, each read by
    several long-polling readers: subscribed for each wait, or holding one subscription for all
    of their pages as a stream does. A missed wake-up would leave a reader waiting out its full
    (long) timeout; every reader must instead see every chunk, in order, promptly."""
    jobs = [str(uuid.uuid4()) for _ in range(20)]
    per_job = 40

    def writer(job: str) -> None:
        for i in range(per_job):
            chunklog.append(job, [content(f"{i}")])
            time.sleep(0.001 * (i % 3))
        chunklog.append(job, [FINISH])

    async def reader(job: str) -> tuple[list[str], float]:
        cursor, seen, longest = 0, [], 0.0
        async with wakeup.Following(job) as following:
            held = following if standing else None
            while True:
                started = time.monotonic()
                page = await wakeup.wait_for(
                    job, lambda c=cursor: chunklog.read_since(job, c), bool, 30.0, held
                )
                longest = max(longest, time.monotonic() - started)
                cursor += len(page)
                seen.extend(c["data"].get("content", "END") for c in page)
                if page and page[-1]["type"] == "finish":
                    return seen, longest

    async def main():
        tasks = [asyncio.create_task(reader(job)) for job in jobs for _ in range(3)]
        await asyncio.sleep(0.05)
        threads = [threading.Thread(target=writer, args=(job,)) for job in jobs]
        for thread in threads:
            thread.start()
        results = await asyncio.gather(*tasks)
        for thread in threads:
            thread.join()
        return results

    results = asyncio.run(main())
    expected = [str(i) for i in range(per_job)] + ["END"]
    for seen, longest in results:
        assert seen == expected
        assert longest < 10  # a missed wake-up would have waited the full 30 s


def test_a_stream_subscribes_once_and_reads_once_per_page(job_id, chunklog_redis):
    if chunklog_redis == "cluster":
        pytest.skip("counts the commands of one Redis server")
    from jobs.redis_clients import sync_redis

    def calls(command: str) -> int:
        return int(sync_redis().info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))

    reads = 0

    async def fetch(cursor: int) -> list:
        nonlocal reads
        reads += 1
        return await chunklog.read_since(job_id, cursor)

    def write_paced() -> None:
        for i in range(20):
            time.sleep(0.02)
            chunklog.append(job_id, [content(f"{i}")])

    async def main() -> list:
        seen: list = []
        async with wakeup.Following(job_id) as following:
            writer = threading.Thread(target=write_paced)
            writer.start()
            while (cursor := len(seen)) < 20:
                seen += await wakeup.wait_for(job_id, lambda c=cursor: fetch(c), bool, 10, following)
            await asyncio.to_thread(writer.join)
        return seen

    subscribes = calls("ssubscribe")
    assert asyncio.run(main()) == [content(f"{i}") for i in range(20)]
    assert calls("ssubscribe") - subscribes == 1
    # About one read per page: another only for the first read, which may come before the
    # first chunk, or after a wake-up that landed while a read was on its way. A subscription
    # per page read each chunk three times (before subscribing, once subscribed, once woken).
    assert reads < 40


def test_polls_in_a_row_share_one_subscription_which_is_dropped_once_nobody_asks(
    job_id, chunklog_redis, monkeypatch
):
    if chunklog_redis == "cluster":
        pytest.skip("counts the commands and subscribers of one Redis server")
    from jobs.redis_clients import sync_redis

    monkeypatch.setattr(wakeup, "LINGER_SECONDS", 0.3)
    channel = chunklog.wake_channel(job_id)

    def subscribes() -> int:
        return int(sync_redis().info("commandstats").get("cmdstat_ssubscribe", {}).get("calls", 0))

    def subscribers() -> int:
        return int(sync_redis().execute_command("PUBSUB", "SHARDNUMSUB", channel)[1])

    def write_paced() -> None:
        for i in range(10):
            time.sleep(0.03)
            chunklog.append(job_id, [content(f"{i}")])

    async def main() -> tuple[list, int, int]:
        seen: list = []
        writer = threading.Thread(target=write_paced)
        writer.start()
        while (cursor := len(seen)) < 10:  # one long-poll per page, as a SEMOSS client asks
            seen += await wakeup.wait_for(job_id, lambda c=cursor: chunklog.read_since(job_id, c), bool, 10)
        await asyncio.to_thread(writer.join)
        lingering = subscribers()
        await asyncio.sleep(0.6)
        return seen, lingering, subscribers()

    before = subscribes()
    seen, lingering, after = asyncio.run(main())
    assert seen == [content(f"{i}") for i in range(10)]
    assert subscribes() - before == 1
    assert (lingering, after) == (1, 0)


def test_an_idle_long_poll_on_a_subscribed_channel_reads_the_log_once(job_id):
    """Nothing appended and every wake-up sure to be heard: a poll whose time is up answers
    what its one read found, with no read after the wait."""
    reads = 0

    async def fetch() -> list:
        nonlocal reads
        reads += 1
        return await chunklog.read_since(job_id, 0)

    async def main() -> list[int]:
        counts = []
        for _ in range(3):  # the first subscribes; the next find the channel still subscribed
            before = reads
            assert await wakeup.wait_for(job_id, fetch, bool, 0.2) == []
            counts.append(reads - before)
        return counts

    assert asyncio.run(main()) == [2, 1, 1]


def test_a_poll_reads_again_when_a_wake_up_may_have_been_lost(job_id):
    """While the poll waits the listener loses a subscription (the epoch moves): a chunk
    appended without a wake-up is still found once the time is up."""

    async def main() -> list:
        hub = wakeup.hub()
        await wakeup.wait_for(job_id, lambda: chunklog.read_since(job_id, 0), bool, 0.05)  # subscribes

        async def lose_a_wake_up() -> None:
            await asyncio.sleep(0.05)
            await chunklog.append_many([(job_id, [content("unheard")])], quiet=[job_id])
            hub.epoch += 1  # what the listener does when Redis drops a subscription

        losing = asyncio.create_task(lose_a_wake_up())
        found = await wakeup.wait_for(job_id, lambda: chunklog.read_since(job_id, 0), bool, 0.3)
        await losing
        return found

    assert asyncio.run(main()) == [content("unheard")]


def test_a_chunk_written_between_the_read_and_the_wait_still_wakes_the_reader(job_id):
    """The exact race: the reader's read finds nothing, then a chunk is appended (and its
    wake-up published) before the reader starts waiting. The reader must wake at once."""
    calls = 0

    async def fetch_then_write():
        nonlocal calls
        calls += 1
        found = await chunklog.read_since(job_id, 0)
        if calls == 2 and not found:  # the first read inside the subscription
            await asyncio.to_thread(chunklog.append, job_id, [content("raced")])
        return found

    async def main():
        started = time.monotonic()
        got = await wakeup.wait_for(job_id, fetch_then_write, bool, timeout=20)
        return got, time.monotonic() - started

    got, waited = asyncio.run(main())
    assert got == [content("raced")]
    assert waited < 5


def test_one_batch_appends_for_many_jobs_and_brings_back_each_ones_length_and_cancel(job_id):
    other = str(uuid.uuid4())
    chunklog.append(other, [content("x")])
    chunklog.request_cancel(other)

    async def main():
        return await chunklog.append_many([(job_id, [content("a"), content("b")]), (other, [content("y")])])

    assert asyncio.run(main()) == [(False, 2), (True, 2)]


def test_an_append_lands_only_on_a_log_of_the_length_the_writer_expects(job_id):
    """A log that lost chunks (Redis restarted empty) is left alone and its length comes back,
    so the worker rewrites it whole; a batch sent twice (a retry after a lost reply) appends once."""

    async def main():
        first = await chunklog.append_many([(job_id, [content("a"), content("b")])], lengths=[0])
        lost = await chunklog.append_many([(job_id, [content("z")])], lengths=[5])
        sent = await chunklog.append_many([(job_id, [content("c")])], lengths=[2])
        again = await chunklog.append_many([(job_id, [content("c")])], lengths=[2])
        return first, lost, sent, again

    assert asyncio.run(main()) == ([(False, 2)], [(False, 2)], [(False, 3)], [(False, 3)])
    assert chunklog.read_all(job_id) == [content("a"), content("b"), content("c")]


def test_a_batch_reloads_the_script_when_redis_has_forgotten_it(job_id):
    from jobs.redis_clients import sync_redis

    sync_redis().script_flush()

    async def main():
        return await chunklog.append_many([(job_id, [content("a")])])

    assert asyncio.run(main()) == [(False, 1)]
    assert chunklog.read_all(job_id) == [content("a")]


def test_a_batch_over_jobs_on_every_shard_appends_each_on_its_own_node(redis_clean, chunklog_redis):
    """The worker's one pipeline, split by redis-py into one per node on a cluster: every job's
    keys sit on one node (the {id} hash tag), and each gets its own length back."""
    jobs = [str(uuid.uuid4()) for _ in range(30)]

    async def main():
        return await chunklog.append_many([(job, [content(job[:4])] * (i + 1)) for i, job in enumerate(jobs)])

    replies = asyncio.run(main())
    assert [r.length for r in replies] == list(range(1, 31))
    for job in jobs:
        keys = [chunklog.chunks_key(job), chunklog.text_key(job), chunklog.alive_key(job)]
        assert len({key_slot(key.encode()) for key in [*keys, chunklog.wake_channel(job)]}) == 1
        assert redis_clean.get(chunklog.text_key(job)).decode() == job[:4] * (jobs.index(job) + 1)
    if chunklog_redis == "cluster":
        nodes = {redis_clean.get_node_from_key(chunklog.chunks_key(job)).name for job in jobs}
        assert len(nodes) == 3


def test_a_burst_of_first_waiters_shares_one_pub_sub_connection(redis_clean, spool_env):
    # A pool this small was drained by the burst before (each first subscribe took a connection),
    # and every Redis call after it waited for the pool's timeout, then failed.
    spool_env(SPOOL_REDIS_MAX_CONNECTIONS=4, SPOOL_REDIS_POOL_TIMEOUT_SECONDS=0.5)

    async def watch(channel: str) -> None:
        async with wakeup.hub().watch(channel):
            pass

    async def main() -> list:
        await asyncio.gather(*(watch(f"burst-{uuid.uuid4()}") for _ in range(50)))
        return await chunklog.read_since(str(uuid.uuid4()), 0)

    assert asyncio.run(main()) == []


def test_a_wave_of_first_waiters_is_subscribed_in_few_commands_and_each_is_woken(redis_clean, chunklog_redis):
    """Subscribes asked for while one is being sent go out together (one command per run of the
    same kind; per channel on a cluster): one send each, under load, made a wave of first polls
    wait seconds for their turn. Each waiter is still woken by its own job's append."""
    from jobs.redis_clients import sync_redis

    jobs = [str(uuid.uuid4()) for _ in range(40)]

    def subscribes() -> int:
        return int(sync_redis().info("commandstats").get("cmdstat_ssubscribe", {}).get("calls", 0))

    async def waiter(job: str) -> list:
        return await wakeup.wait_for(job, lambda: chunklog.read_since(job, 0), bool, 10)

    async def main() -> list:
        waiting = [asyncio.create_task(waiter(job)) for job in jobs]
        while not all(wakeup.hub().subscribed(chunklog.wake_channel(job)) for job in jobs):
            await asyncio.sleep(0.01)
        for job in jobs:
            await asyncio.to_thread(chunklog.append, job, [content(job[:8])])
        return await asyncio.wait_for(asyncio.gather(*waiting), 8)  # a lost wake-up waits 10 s

    before = subscribes() if chunklog_redis == "redis" else 0
    assert asyncio.run(main()) == [[content(job[:8])] for job in jobs]
    if chunklog_redis == "redis":
        # The first alone, then those asked for while one is in flight, together. Each waiter
        # reads the log before it subscribes, and those reads end at different times, so a wave
        # goes out in a few runs (2 on a quiet machine; 3 seen in CI under load), not in one
        # command per waiter (40), which was the fault.
        assert subscribes() - before <= len(jobs) // 4


def channel_messages(job_id: str):
    """Subscribed to the job's wake channel: a function that gives the next message's data."""
    subscriber = redis_clients.sync_redis().pubsub()
    subscriber.ssubscribe(chunklog.wake_channel(job_id))

    def next_message() -> bytes:
        deadline = time.monotonic() + 10  # a bound on a broken test, not a measurement
        while time.monotonic() < deadline:
            found = subscriber.get_sharded_message(ignore_subscribe_messages=True, timeout=0.5)
            if found is not None:
                return found["data"]
        raise AssertionError("no message on the job's channel")

    return subscriber, next_message


def test_a_quiet_append_wakes_no_reader_and_a_loud_one_does(job_id):
    """A Batch API line's appends publish no wake-up: after a quiet append the first message on
    the job's channel is a marker published after it (messages on a channel keep their order),
    and a loud append's wake-up follows the marker."""
    subscriber, next_message = channel_messages(job_id)
    try:
        asyncio.run(chunklog.append_many([(job_id, [content("quiet")])], quiet=[job_id]))
        redis_clients.sync_redis().spublish(chunklog.wake_channel(job_id), b"marker")
        asyncio.run(chunklog.append_many([(job_id, [content("loud")])]))
        assert [next_message(), next_message()] == [
            b"marker",
            b"1:[" + chunklog.encode(content("loud")) + b"]",
        ]
    finally:
        subscriber.close()
    assert [c["data"]["content"] for c in chunklog.read_all(job_id)] == ["quiet", "loud"]


def test_a_wake_up_carries_the_chunks_it_announces_and_where_they_start(job_id):
    subscriber, next_message = channel_messages(job_id)
    try:
        chunklog.append(job_id, [content("a"), content("b")])
        chunklog.append(job_id, [content("c")])
        first, second = next_message(), next_message()
    finally:
        subscriber.close()
    assert second == b"2:[" + chunklog.encode(content("c")) + b"]"
    carried = [first, second]
    assert chunklog.carried_chunks(carried, 0) == [content("a"), content("b"), content("c")]
    assert carried == []  # taken
    assert chunklog.carried_chunks([first, second], 1) == [content("b"), content("c")]  # b was read
    assert chunklog.carried_chunks([second], 2) == [content("c")]


@pytest.mark.parametrize(
    "heard",
    [
        pytest.param(lambda first, second: [second], id="a-gap"),
        pytest.param(lambda first, second: [first, b"1", second], id="a-wake-up-that-carried-nothing"),
        pytest.param(lambda first, second: [first, b"", second], id="a-reconnected-listener"),
        pytest.param(lambda first, second: [b"admitted"], id="another-wake-up"),
        pytest.param(lambda first, second: [b"not:a-page"], id="another-message-with-a-colon"),
    ],
)
def test_what_was_not_carried_sends_the_reader_to_the_log(job_id, heard):
    subscriber, next_message = channel_messages(job_id)
    try:
        chunklog.append(job_id, [content("a")])
        chunklog.append(job_id, [content("b")])
        first, second = next_message(), next_message()
    finally:
        subscriber.close()
    carried = heard(first, second)
    assert chunklog.carried_chunks(carried, 0) is None and carried == []


def test_a_stream_far_behind_its_wake_ups_reads_the_log(job_id):
    """A stream that has not taken its page for CARRIED_MAX wake-ups (a client not reading)
    keeps no more of them: it reads the log, which holds every chunk."""
    woken = wakeup.Woken(keeps_carried=True)
    for i in range(wakeup.CARRIED_MAX + 1):
        woken.heard(f"{i}:[".encode() + chunklog.encode(content(str(i))) + b"]")
    assert woken.is_set() and len(woken.carried) <= wakeup.CARRIED_MAX
    assert chunklog.carried_chunks(woken.carried, 0) is None


def test_a_wake_up_for_chunks_the_reader_has_brings_nothing_new(job_id):
    """Its reader read the log after the append (as a stream's first read after subscribing
    may): the next append's wake-up is still to come, so there is nothing to read."""
    subscriber, next_message = channel_messages(job_id)
    try:
        chunklog.append(job_id, [content("a")])
        first = next_message()
    finally:
        subscriber.close()
    assert chunklog.carried_chunks([first], 1) == []


def test_a_batch_past_the_carried_bound_wakes_with_nothing_carried(job_id):
    large = content("x" * chunklog.CARRIED_MAX_BYTES)
    subscriber, next_message = channel_messages(job_id)
    try:
        chunklog.append(job_id, [large])
        chunklog.append(job_id, [content("small")])
        assert [next_message(), next_message()] == [b"1", b"1:[" + chunklog.encode(content("small")) + b"]"]
    finally:
        subscriber.close()


def write_live_meta(job_id: str, owner: int) -> None:
    meta = {
        "owner": owner,
        "engine": {},
        "room": None,
        "face": "semoss",
        "created": "2026-12-07T00:00:00+00:00",
    }
    chunklog.write_meta(job_id, {**meta, "request": {}, "options": {}})


def poll(job_id: str, owner: int, cursor: int | None = None, counted=None) -> tuple:
    return asyncio.run(chunklog.poll_live(job_id, owner, cursor, "semoss-stream", counted))


def text_poll(job_id: str, owner: int, counted=None) -> tuple:
    return asyncio.run(chunklog.poll_live_text(job_id, owner, "semoss-partial", counted))


def test_a_poll_reads_the_live_state_and_claims_its_owners_page_in_one_step(job_id):
    write_live_meta(job_id, owner=7)
    chunklog.append(job_id, [content("a"), content("b")])
    state, page = poll(job_id, 7)
    assert state.meta["owner"] == 7 and state.alive and state.last == content("b")
    assert page == (0, [content("a"), content("b")])
    chunklog.append(job_id, [content("c")])
    assert poll(job_id, 7)[1] == (2, [content("c")])
    assert poll(job_id, 7)[1] == (3, [])
    # A cursor pages without claiming: the same page each time.
    assert [poll(job_id, 7, cursor=1)[1] for _ in range(2)] == [(1, [content("b"), content("c")])] * 2


def test_a_text_poll_reads_the_live_state_and_claims_its_owners_text_in_one_step(job_id):
    write_live_meta(job_id, owner=7)
    chunklog.append(job_id, [content("Hello")])
    state, text = text_poll(job_id, 7)
    assert state.meta["owner"] == 7 and text == ("Hello", "Hello", content("Hello"))
    chunklog.append(job_id, [content(" \n")])  # blank new text waits for more (the SDK drops it)
    assert text_poll(job_id, 7)[1] == ("", "Hello", content(" \n"))
    chunklog.append(job_id, [content("world")])
    assert text_poll(job_id, 7)[1] == (" \nworld", "Hello \nworld", content("world"))


@pytest.mark.parametrize("read", [poll, text_poll])
def test_a_poll_of_anothers_job_reads_its_state_and_claims_nothing(job_id, read):
    write_live_meta(job_id, owner=17)
    chunklog.append(job_id, [content("a")])
    # 1 is a prefix of 17: the owner is matched whole, not by its opening digits.
    for stranger in (1, 71, 170):
        state, nothing = read(job_id, stranger)
        assert nothing is None and state.meta["owner"] == 17
    assert poll(job_id, 17)[1] == (0, [content("a")]) and text_poll(job_id, 17)[1][0] == "a"


@pytest.mark.parametrize("read", [poll, text_poll])
def test_a_poll_claims_nothing_from_an_ended_log_or_a_job_with_no_live_state(job_id, read):
    chunklog.append(job_id, [content("a")])
    assert read(job_id, 7)[1] is None  # no meta: Postgres says whose it is
    write_live_meta(job_id, owner=7)
    chunklog.append(job_id, [FINISH])
    state, nothing = read(job_id, 7)
    assert nothing is None and state.last == FINISH
    assert asyncio.run(chunklog.claim_chunks(job_id, "semoss-stream")) == (0, [content("a"), FINISH])
    assert asyncio.run(chunklog.claim_text(job_id, "semoss-partial")) == ("a", "a", FINISH)


@pytest.mark.parametrize("read", [poll, text_poll])
def test_a_poll_over_the_request_limit_reads_and_claims_nothing(job_id, one_limit_window, spool_env, read):
    from jobs import limits

    spool_env(SPOOL_REQUESTS_PER_MINUTE=2)
    write_live_meta(job_id, owner=7)
    chunklog.append(job_id, [content("a")])
    who = f"poller-{job_id}"
    assert poll(job_id, 7, cursor=0, counted=limits.request_count(who))[1] == (0, [content("a")])
    assert poll(job_id, 7, cursor=0, counted=limits.request_count(who))[1] == (0, [content("a")])
    with pytest.raises(limits.LimitExceeded):
        read(job_id, 7, counted=limits.request_count(who))
    assert asyncio.run(chunklog.claim_chunks(job_id, "semoss-stream")) == (0, [content("a")])
    assert asyncio.run(chunklog.claim_text(job_id, "semoss-partial"))[0] == "a"
