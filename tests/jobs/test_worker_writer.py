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
def held_batches(monkeypatch, redis_clean) -> tuple[set[str], asyncio.Event, list[str]]:
    """(jobs, gate, entered): a batch with one of the jobs waits for the gate before it reaches
    Redis, in flight for as long as a test needs (a write of hundreds of jobs on a busy
    machine); `entered` lists the jobs of every batch sent, in order."""
    held: set[str] = set()
    gate = asyncio.Event()
    entered: list[str] = []
    real = chunklog.append_many

    async def gated(batch: Any, **options: Any) -> Any:
        entered.extend(job_id for job_id, _ in batch)
        if any(job_id in held for job_id, _ in batch):
            await gate.wait()
        return await real(batch, **options)

    monkeypatch.setattr(chunklog, "append_many", gated)
    return held, gate, entered


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.001)


def test_a_jobs_first_chunk_does_not_wait_for_the_batch_in_flight(held_batches):
    held, gate, entered = held_batches
    slow_id, new_id = str(uuid.uuid4()), str(uuid.uuid4())
    held.add(slow_id)

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
