"""Embeddings on a limited engine take one of its slots, answered in the request: they wait for
a slot like a job, start when one frees, and give it back."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from engine.embeddings import EmbeddingRequest
from jobs import queueing, services
from jobs.embeddings import embeddings_create
from jobs.scheduling import admission, inline

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def engine(monkeypatch, redis_clean):
    monkeypatch.setattr(queueing, "send_job", lambda job_id: None)
    offline = services.engine_ensure_offline()
    limited = services.engine_upsert(
        name=f"one-slot-{uuid.uuid4().hex[:6]}", kind="offline", config=offline.config
    )
    limited.max_concurrency = 1
    limited.save()
    return limited


def occupy(engine) -> str:
    """A job of the engine that holds its only slot."""
    job_id = str(uuid.uuid4())
    admission.submit(engine, admission.Ticket(job_id, "default", "other", 1, 10, None))
    assert admission.take(engine, job_id).run
    return job_id


def test_an_embedding_request_waits_for_a_free_slot_and_gives_it_back(engine):
    running = occupy(engine)

    async def main() -> tuple[bool, int, int]:
        asked = asyncio.ensure_future(
            embeddings_create(
                owner_id=1, engine=engine, request=EmbeddingRequest(inputs=["a b"]), face="openai"
            )
        )
        await asyncio.sleep(0.5)
        waited = not asked.done()
        waiting = (await asyncio.to_thread(admission.status, engine)).waiting["interactive"]
        await asyncio.to_thread(admission.release, engine, running, 10)  # the job ends
        result = await asyncio.wait_for(asked, 30)
        return waited, waiting, len(result.vectors)

    assert asyncio.run(main()) == (True, 1, 1)
    assert admission.status(engine).running == 0  # its slot is free again


def test_an_embedding_request_that_gets_no_slot_in_time_is_refused_as_expired(engine, spool_env):
    spool_env(SPOOL_QUEUE_TIMEOUT_SECONDS=0.3)
    occupy(engine)
    with pytest.raises(inline.Expired):
        asyncio.run(
            embeddings_create(
                owner_id=1, engine=engine, request=EmbeddingRequest(inputs=["a"]), face="openai"
            )
        )
    assert admission.status(engine).waiting["interactive"] == 0  # it left the queue


def test_a_batch_lines_request_waits_at_class_batch_behind_an_interactive_one(engine):
    """Both wait for the one slot; when it frees, the interactive request goes first."""
    from jobs.placement import BATCH

    running = occupy(engine)
    order: list[str] = []

    async def ask(tag: str, **placement) -> None:
        request = EmbeddingRequest(inputs=[tag])
        await embeddings_create(owner_id=1, engine=engine, request=request, face="openai", **placement)
        order.append(tag)

    async def main() -> dict[str, int]:
        batch = asyncio.ensure_future(ask("batch", priority=BATCH))
        await asyncio.sleep(0.3)
        interactive = asyncio.ensure_future(ask("interactive"))
        await asyncio.sleep(0.3)
        waiting = dict((await asyncio.to_thread(admission.status, engine)).waiting)
        await asyncio.to_thread(admission.release, engine, running, 10)
        await asyncio.wait_for(asyncio.gather(batch, interactive), 30)
        return waiting

    waiting = asyncio.run(main())
    assert (waiting["batch"], waiting["interactive"]) == (1, 1)
    assert order == ["interactive", "batch"]
