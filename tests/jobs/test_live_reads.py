"""Reading a live job (owner, status, what the faces render) touches Redis only; a finished or
expired one is read from Postgres."""

from __future__ import annotations

import asyncio
import functools
import time

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test.utils import CaptureQueriesContext

from engine.types import GenerationRequest
from jobs import chunklog, queueing, selectors, services
from jobs.jobview import JobView
from jobs.models import Engine, Job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def job(redis_clean) -> Job:
    owner = services.user_ensure(username="live-reader")
    request = GenerationRequest(messages=[{"role": "user", "content": "hi"}], n=2)
    return services.job_create(
        owner=owner, engine=services.engine_ensure_offline(), request=request,
        options={"stream": True, "include_usage": True}, face="openai",
    )  # fmt: skip


def read(job_id, owner_id):
    with CaptureQueriesContext(connection) as queries:
        found = async_to_sync(selectors.job_for_owner)(job_id, owner_id)
    return found, len(queries)


def test_a_queued_job_is_read_from_redis_with_no_query(job):
    found, queries = read(str(job.pk), job.owner_id)
    assert queries == 0
    assert found.status == Job.Status.QUEUED and not found.is_finished
    assert (found.engine.name, found.request["n"], found.options["include_usage"]) == (
        "spool-offline",
        2,
        True,
    )
    assert found.created_at == job.created_at and found.face == "openai"


def test_a_job_with_a_worker_heartbeat_reads_as_running(job):
    chunklog.append(str(job.pk), [{"type": "content", "data": {"content": "a"}}])
    found, queries = read(str(job.pk), job.owner_id)
    assert queries == 0 and found.status == Job.Status.RUNNING


def test_another_owner_is_told_nothing_without_a_query(job):
    found, queries = read(str(job.pk), job.owner_id + 1000)
    assert found is None and queries == 0


def test_a_job_whose_log_has_ended_is_read_from_postgres(job):
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED)
    chunklog.append(str(job.pk), [{"type": "finish", "data": {"finish_reason": "stop"}}])
    found, queries = read(str(job.pk), job.owner_id)
    assert queries == 1 and found.status == Job.Status.SUCCEEDED


def test_once_the_live_meta_has_expired_postgres_answers(job, redis_clean):
    redis_clean.delete(chunklog.meta_key(str(job.pk)))
    found, queries = read(str(job.pk), job.owner_id)
    assert queries == 1 and found.pk == job.pk and found.status == Job.Status.QUEUED


def test_a_job_with_output_but_no_heartbeat_reads_as_running(job, redis_clean):
    chunklog.append(str(job.pk), [{"type": "content", "data": {"content": "a"}}])
    redis_clean.delete(chunklog.alive_key(str(job.pk)))
    found, queries = read(str(job.pk), job.owner_id)
    assert queries == 0 and found.status == Job.Status.RUNNING


def test_an_idle_long_poll_of_a_queued_job_touches_no_postgres(job):
    found, _ = read(str(job.pk), job.owner_id)
    with CaptureQueriesContext(connection) as queries:
        page = async_to_sync(selectors.job_chunks_since)(found, cursor=0, reader="test", wait=0.05)
    assert page.chunks == [] and not page.ended and len(queries) == 0


def test_the_live_view_and_the_rows_view_agree_on_what_both_know(job, monkeypatch):
    """A face renders the same job the same way whether it read Redis or Postgres: every field
    the live meta holds equals the row's, the engine's limits included (a cancel of a waiting
    job needs them); only what the meta leaves out differs (the messages, timings, result)."""
    monkeypatch.setattr(queueing, "send_job", lambda job_id: None)  # no worker here
    engine = services.engine_upsert(name="live-limited", kind="offline", config={})
    Engine.objects.filter(pk=engine.pk).update(max_concurrency=3)
    limited = services.job_create(
        owner=job.owner, engine=Engine.objects.get(pk=engine.pk),
        request=GenerationRequest(messages=[{"role": "user", "content": "hi"}]), options={}, face="native",
    )  # fmt: skip
    for created in (job, limited):
        live, _ = read(str(created.pk), created.owner_id)
        row = JobView.of(Job.objects.select_related("engine").get(pk=created.pk))
        assert live.live and not row.live
        same = ("id", "owner_id", "engine", "room_id", "face", "options", "status", "created_at")
        assert {name: getattr(live, name) for name in same} == {name: getattr(row, name) for name in same}
        assert live.request == {k: v for k, v in row.request.items() if k != "messages"}
    assert not read(str(job.pk), job.owner_id)[0].engine.limited
    assert read(str(limited.pk), limited.owner_id)[0].engine.limited


def poller(job, *, wait: float, owner_id=None, cursor=None):
    """One SEMOSS poll of the job, to be awaited."""
    owner_id = job.owner_id if owner_id is None else owner_id
    return functools.partial(
        selectors.job_page_for_owner, str(job.pk), owner_id, cursor=cursor, reader="semoss-stream", wait=wait
    )


def page(job, owner_id=None, *, cursor=None, wait=0.0):
    found = async_to_sync(poller(job, wait=wait, owner_id=owner_id, cursor=cursor))()
    return found and (found[0], found[1].start, found[1].chunks)


def text(chunks) -> list[str]:
    return [chunk["data"]["content"] for chunk in chunks]


def test_a_poll_of_a_live_job_gets_its_state_and_page_from_redis(job):
    chunklog.append(str(job.pk), [{"type": "content", "data": {"content": "a"}}])
    with CaptureQueriesContext(connection) as queries:
        found, start, chunks = page(job)
    assert len(queries) == 0 and found.live and found.status == Job.Status.RUNNING
    assert (start, text(chunks)) == (0, ["a"])
    assert page(job, job.owner_id + 1000) is None  # another's: no hint, and nothing claimed
    chunklog.append(str(job.pk), [{"type": "content", "data": {"content": "b"}}])
    assert page(job)[1:] == (1, [{"type": "content", "data": {"content": "b"}}])
    assert page(job, cursor=0)[1:] == (0, [{"type": "content", "data": {"content": c}} for c in "ab"])


def test_a_poll_of_an_ended_job_reads_postgres_and_hands_out_the_rest(job):
    chunklog.append(str(job.pk), [{"type": "content", "data": {"content": "a"}}])
    page(job)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED)
    chunklog.append(str(job.pk), [{"type": "finish", "data": {"finish_reason": "stop"}}])
    found, start, chunks = page(job)
    assert found.status == Job.Status.SUCCEEDED and not found.live
    assert (start, chunks) == (1, [{"type": "finish", "data": {"finish_reason": "stop"}}])
    assert page(job, job.owner_id + 1000) is None


def round_trips(monkeypatch) -> list[bytes]:
    """What this process sends to Redis, one entry per round trip (a pipeline is one)."""
    from redis.asyncio.connection import AbstractConnection

    sent: list[bytes] = []
    send = AbstractConnection.send_packed_command

    async def counted(self, command, check_health=True):
        sent.append(command if isinstance(command, bytes) else b"".join(command))
        return await send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    return sent


def text_poller(job, *, wait: float):
    """One SEMOSS partial (text) poll of the job, to be awaited."""
    return functools.partial(
        selectors.job_text_for_owner, str(job.pk), job.owner_id, reader="semoss-partial", wait=wait
    )


# Each kind of poll: how to make one, the chunklog read it starts with, what it read as text.
POLLS = {
    "page": (poller, "poll_live", lambda found: text(found[1].chunks)),
    "text": (text_poller, "poll_live_text", lambda found: [found[1][0]] if found[1][0] else []),
}


@pytest.mark.parametrize("kind", POLLS)
def test_an_idle_long_poll_of_a_subscribed_job_costs_one_round_trip(job, monkeypatch, kind):
    make, _, got = POLLS[kind]

    async def two_idle_polls():
        poll = make(job, wait=0.2)
        first = await poll()  # subscribes, as a client's first poll does
        sent.clear()
        return first, await poll()  # the channel is still subscribed (it lingers for the next)

    sent = round_trips(monkeypatch)
    first, second = async_to_sync(two_idle_polls)()
    assert got(first) == got(second) == [] and second[0].status == Job.Status.QUEUED
    assert len(sent) == 1 and b"EVALSHA" in sent[0]


@pytest.mark.parametrize("subscribed", [True, False])
@pytest.mark.parametrize("kind", POLLS)
def test_a_chunk_appended_just_after_a_polls_read_wakes_it(job, monkeypatch, kind, subscribed):
    """The read and the subscription are ordered so that no append falls between them unheard:
    on a channel still subscribed the poll's one read is made inside the watch."""
    make, first_read, got = POLLS[kind]
    read_live = getattr(chunklog, first_read)

    async def then_append(*args):
        found = await read_live(*args)
        late = [{"type": "content", "data": {"content": "late"}}]
        await asyncio.to_thread(chunklog.append, str(job.pk), late)
        return found

    async def polls():
        if subscribed:
            await make(job, wait=0.1)()
        monkeypatch.setattr(chunklog, first_read, then_append)
        return await asyncio.wait_for(make(job, wait=10)(), 8)  # a missed wake-up waits out 10 s

    assert got(async_to_sync(polls)()) == ["late"]


def stream(job, monkeypatch, write) -> tuple[list, list[bytes]]:
    """A stream's pages of the job (as the SSE faces read them: a cursor, one subscription for
    all of its pages) while `write` appends in a thread; and the log reads it sent to Redis."""
    view = JobView.of(Job.objects.select_related("engine").get(pk=job.pk))

    async def pages() -> list:
        seen: list = []
        async with selectors.job_following(view) as following:
            writer = asyncio.ensure_future(asyncio.to_thread(write))
            while not seen or not chunklog.is_terminal(seen[-1]):
                page = await selectors.job_chunks_since(
                    view, cursor=len(seen), reader="test-stream", wait=10, following=following
                )
                seen += page.chunks
            await writer
        return seen

    async def bounded() -> list:
        return await asyncio.wait_for(pages(), 8)  # a wake-up missed would leave a page waiting 10 s

    sent = round_trips(monkeypatch)
    seen = async_to_sync(bounded)()
    return seen, [command for command in sent if b"LRANGE" in command]


def chunk(i: int) -> dict:
    return {"type": "content", "data": {"content": f"{i}"}}


FINISH = {"type": "finish", "data": {"finish_reason": "stop"}}


def test_a_streams_pages_come_with_their_wake_ups_not_from_the_log(job, monkeypatch):
    """At a model's pace each page is a chunk or two, and the wake-up that announced it carried
    it: the stream reads the log only before its first wake-up (one read per page before)."""

    def paced() -> None:
        for i in range(20):
            time.sleep(0.02)
            chunklog.append(str(job.pk), [chunk(i)])
        chunklog.append(str(job.pk), [FINISH])

    seen, log_reads = stream(job, monkeypatch, paced)
    assert seen == [chunk(i) for i in range(20)] + [FINISH]
    # The first read before subscribing, the one once subscribed, and one more should an append
    # land between the two.
    assert len(log_reads) <= 3


def test_a_stream_reads_the_log_for_chunks_no_wake_up_carried(job, monkeypatch):
    """Chunks appended with no wake-up (a quiet append), or too large for one to carry, are read
    from the log, in their place."""
    large = {"type": "content", "data": {"content": "x" * chunklog.CARRIED_MAX_BYTES}}

    def with_gaps() -> None:
        job_id = str(job.pk)
        for i in range(3):
            time.sleep(0.05)
            chunklog.append(job_id, [chunk(i)])
        asyncio.run(chunklog.append_many([(job_id, [chunk(3)])], quiet=[job_id]))
        chunklog.append(job_id, [chunk(4)])
        time.sleep(0.05)
        chunklog.append(job_id, [large])
        time.sleep(0.05)
        chunklog.append(job_id, [chunk(5), FINISH])

    seen, log_reads = stream(job, monkeypatch, with_gaps)
    assert seen == [chunk(0), chunk(1), chunk(2), chunk(3), chunk(4), large, chunk(5), FINISH]
    assert len(log_reads) >= 3  # the first, and one for each of the two chunks nothing carried


def test_a_chat_streams_first_token_comes_with_its_wake_up(job, monkeypatch):
    """The OpenAI stream's view waits for the first visible chunk before it answers (sse.prefetch):
    a read before subscribing, one once subscribed, then the first token's page from its
    wake-up, with no read after it."""
    from jobs.faces.openai import sse

    view = JobView.of(Job.objects.select_related("engine").get(pk=job.pk))

    def later() -> None:
        time.sleep(0.2)
        chunklog.append(str(job.pk), [chunk(0)])

    async def first_token() -> list:
        writer = asyncio.ensure_future(asyncio.to_thread(later))
        chunks = await sse.prefetch(view, wait=10)
        await writer
        return chunks

    sent = round_trips(monkeypatch)
    assert async_to_sync(first_token)() == [chunk(0)]
    assert len([command for command in sent if b"LRANGE" in command]) <= 2
