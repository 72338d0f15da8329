"""The worker's log writer on the real Redis: a job's first chunks go out without waiting for
the batch in flight, and every job's chunks still land once, in order."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from jobs import chunklog
from jobs.worker.writer import JobLog, LogWriter


def content(text: str) -> dict:
    return {"type": "content", "data": {"content": text}}


@pytest.fixture
def held_batches(monkeypatch, redis_clean) -> tuple[dict[str, asyncio.Event], list[str]]:
    """(gates, entered): a write carrying a job of `gates` waits for that job's gate before it
    reaches Redis, in flight for as long as a test needs (a write of hundreds of jobs on a busy
    machine); `entered` lists the jobs of every write sent, in order."""
    gates: dict[str, asyncio.Event] = {}
    entered: list[str] = []
    real = chunklog.append_many

    async def gated(batch: Any, **options: Any) -> Any:
        entered.extend(job_id for job_id, _ in batch)
        for job_id, _ in batch:
            if job_id in gates:
                await gates[job_id].wait()
        return await real(batch, **options)

    monkeypatch.setattr(chunklog, "append_many", gated)
    return gates, entered


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.001)


def test_a_jobs_first_chunk_does_not_wait_for_the_batch_in_flight(held_batches):
    gates, entered = held_batches
    slow_id, new_id = str(uuid.uuid4()), str(uuid.uuid4())
    gate = gates[slow_id] = asyncio.Event()

    async def main() -> tuple[list, list, list]:
        out = LogWriter()
        slow = JobLog(slow_id, on_cancel=lambda: None)
        out.open(slow)
        slow.add(content("a"))
        out.ready(slow)
        await asyncio.wait_for(_until(lambda: slow_id in entered), 10)  # its batch is in flight
        new = JobLog(new_id, on_cancel=lambda: None)
        out.open(new)
        new.add(content("first"))
        out.ready(new)
        # Fails (times out) if the new job's chunk waits for the held batch's reply.
        await asyncio.wait_for(new.drained.wait(), 10)
        first_seen = await chunklog.read_since(new_id, 0)
        new.add(content("second"))  # later chunks take the batches as usual
        out.ready(new)
        gate.set()
        await asyncio.wait_for(slow.drained.wait(), 10)
        await asyncio.wait_for(new.drained.wait(), 10)
        return first_seen, await chunklog.read_since(new_id, 0), await chunklog.read_since(slow_id, 0)

    first_seen, new_log, slow_log = asyncio.run(main())
    assert first_seen == [content("first")]
    assert new_log == [content("first"), content("second")]
    assert slow_log == [content("a")]


def test_a_job_is_in_one_write_at_a_time(held_batches):
    """While a job's first write is in flight, its next chunks wait for that write's reply
    rather than ride in a batch beside it: two writes of one job at once sent the same chunks
    twice, each found the log at another length than it expected, and the job's log was
    rewritten over and over (a worker at full speed with 100 streams spent 1.7 ms of CPU per
    chunk on it)."""
    gates, entered = held_batches
    busy_id, new_id = str(uuid.uuid4()), str(uuid.uuid4())
    busy_gate, new_gate = gates[busy_id], gates[new_id] = asyncio.Event(), asyncio.Event()

    async def main() -> list:
        out = LogWriter()
        busy = JobLog(busy_id, on_cancel=lambda: None)
        busy.add(content("a"))
        out.open(busy)
        await asyncio.wait_for(_until(lambda: busy_id in entered), 10)  # the batch in flight
        new = JobLog(new_id, on_cancel=lambda: None)
        out.open(new)
        new.add(content("1"))
        out.ready(new)  # its own first write, held
        await asyncio.wait_for(_until(lambda: new_id in entered), 10)
        new.add(content("2"))
        out.ready(new)
        busy_gate.set()  # the batch loop is free again while the new job's write is held
        await asyncio.wait_for(busy.drained.wait(), 10)
        for _ in range(50):
            await asyncio.sleep(0)
        assert entered.count(new_id) == 1
        new_gate.set()
        await asyncio.wait_for(_until(lambda: new.confirmed == 2), 10)
        return await chunklog.read_since(new_id, 0)

    assert asyncio.run(main()) == [content("1"), content("2")]
