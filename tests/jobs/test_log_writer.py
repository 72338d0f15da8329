"""The worker's log writer (jobs/worker/writer.py) against real Redis: how chunks of several jobs
are gathered into a batch. A job's first chunk leaves at once only when the writer is idle; while
a batch is in flight, the next one gathers for a turn of the loop as every batch does, so the
first chunks of new jobs do not make the batches of a busy worker smaller. Whether it is idle
decides how a job is claimed (jobs/worker/runner.py)."""

from __future__ import annotations

import asyncio

import pytest

from engine.types import CONTENT
from jobs import chunklog
from jobs.worker.writer import JobLog, LogWriter


def chunk(text: str) -> dict:
    return {"type": CONTENT, "data": {"content": text}, "choice": 0}


@pytest.fixture
def batches(monkeypatch, redis_clean):
    """The job ids of each batch the writer sends (with chunks), the first's reply held until
    `release`."""
    sent: list[set[str]] = []
    release = asyncio.Event()
    real_append_many = chunklog.append_many

    async def gated(batch, **options):
        sent.append({job_id for job_id, chunks in batch if chunks})
        replies = await real_append_many(batch, **options)
        if len(sent) == 1:
            await release.wait()  # its reply, held: the writer resumes only when released
        return replies

    monkeypatch.setattr(chunklog, "append_many", gated)
    return sent, release


def test_a_first_chunk_while_a_batch_is_in_flight_rides_a_batch_that_gathers(batches):
    sent, release = batches

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        writer = LogWriter()
        jobs = {name: JobLog(name, on_cancel=lambda: None) for name in ("a", "b", "c")}
        jobs["a"].add(chunk("a"))
        writer.ready(jobs["a"])
        await asyncio.sleep(0.05)  # a's batch is in flight, held
        jobs["b"].add(chunk("b"))
        writer.ready(jobs["b"], at_once=True)  # b's first chunk, while the writer is busy

        def c_is_ready() -> None:
            jobs["c"].add(chunk("c"))
            writer.ready(jobs["c"])

        release.set()  # a's reply comes: the writer sends the next batch from the loop's next run
        loop.call_soon(c_is_ready)  # ... c's chunk comes in the turn after that
        await asyncio.wait_for(asyncio.gather(*(j.drained.wait() for j in jobs.values())), 10)

    asyncio.run(scenario())
    assert sent[:2] == [{"a"}, {"b", "c"}]


def test_a_first_chunk_leaves_at_once_when_the_writer_is_idle(batches):
    sent, release = batches
    release.set()

    async def scenario() -> None:
        writer = LogWriter()
        first, other = JobLog("first", on_cancel=lambda: None), JobLog("other", on_cancel=lambda: None)
        await asyncio.sleep(0.05)  # the writer idle

        def other_is_ready() -> None:
            other.add(chunk("later"))
            writer.ready(other)

        first.add(chunk("first"))
        writer.ready(first, at_once=True)
        asyncio.get_running_loop().call_soon(other_is_ready)  # a turn later: too late for it
        await asyncio.wait_for(asyncio.gather(first.drained.wait(), other.drained.wait()), 10)

    asyncio.run(scenario())
    assert sent[:2] == [{"first"}, {"other"}]


def test_the_writer_is_idle_only_with_nothing_ready_and_nothing_in_flight(batches):
    sent, release = batches
    seen = []

    async def scenario() -> None:
        writer = LogWriter()
        seen.append(writer.idle)  # new: nothing to write
        job = JobLog("job", on_cancel=lambda: None)
        job.add(chunk("a"))
        writer.ready(job)
        seen.append(writer.idle)  # a chunk ready
        await asyncio.sleep(0.05)
        seen.append(writer.idle)  # its batch in flight, the reply held
        release.set()
        await asyncio.wait_for(job.drained.wait(), 10)
        await asyncio.sleep(0)
        seen.append(writer.idle)  # written

    asyncio.run(scenario())
    assert seen == [True, False, False, True]
