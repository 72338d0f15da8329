"""The batch runner's steps, each run as a redelivered or re-sent task message would run them:
a line is started once, whatever step runs again; a chain whose token was replaced does nothing;
the output file holds each custom_id once, in the input's order."""

from __future__ import annotations

import json

import pytest
from django.core.files.base import ContentFile

from jobs import services
from jobs.batches import runner, service
from jobs.batches.models import Batch, BatchLine, File
from jobs.models import Job

pytestmark = pytest.mark.django_db

LINES = 7


@pytest.fixture
def batch(spool_env, settings, tmp_path, redis_clean):
    settings.STORAGES = {
        **settings.STORAGES,
        "spool_files": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    spool_env(SPOOL_BATCH_ACTIVE_LINES=3)
    spool_env(SPOOL_JOBS_PER_MINUTE=0)
    owner = services.user_ensure(username="batcher")
    services.engine_ensure_offline()
    ask = {"model": "spool-offline", "messages": [{"role": "user", "content": "Hi"}]}
    body = b"".join(
        json.dumps(
            {"custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions", "body": ask}
        ).encode()
        + b"\n"
        for i in range(LINES)
    )
    source = service.file_create(
        owner=owner,
        purpose=File.Purpose.BATCH,
        filename="in.jsonl",
        content=ContentFile(body),
        size=len(body),
    )
    return service.batch_create(
        owner=owner,
        engines=frozenset(),
        input_file=source,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata=None,
    )


def _step(batch: Batch, token: str | None = None) -> float | None:
    batch.refresh_from_db()
    return runner.advance(str(batch.pk), token or batch.runner_token)


def _finish_running_jobs(batch: Batch) -> None:
    Job.objects.filter(batch_lines__batch=batch, status=Job.Status.QUEUED).update(
        status=Job.Status.SUCCEEDED,
        finish_reason="stop",
        result={"choices": [{"content": "Hello", "finish_reason": "stop"}]},
    )


def test_a_step_run_again_starts_no_line_twice_and_the_owner_s_window_holds(batch):
    _step(batch)  # validating
    assert Batch.objects.get(pk=batch.pk).status == Batch.Status.IN_PROGRESS

    _step(batch)
    _step(batch)  # again, as a redelivered message would: the window is full
    assert BatchLine.objects.filter(batch=batch).count() == 3

    _finish_running_jobs(batch)
    _step(batch)
    lines = BatchLine.objects.filter(batch=batch)
    assert lines.count() == 6
    assert sorted(lines.values_list("custom_id", flat=True)) == [f"c{i}" for i in range(6)]
    assert lines.values("job_id").distinct().count() == 6


def test_a_chain_whose_token_was_replaced_does_nothing(batch):
    _step(batch)
    stale = batch.runner_token
    Batch.objects.filter(pk=batch.pk).update(runner_token=runner.new_token())

    assert _step(batch, stale) is None
    assert BatchLine.objects.filter(batch=batch).count() == 0


def test_the_output_file_holds_every_custom_id_once_in_the_input_s_order(batch):
    for _ in range(20):
        if _step(batch) is None:
            break
        _finish_running_jobs(batch)
    done = Batch.objects.get(pk=batch.pk)
    assert done.status == Batch.Status.COMPLETED
    assert (done.total, done.completed, done.failed) == (LINES, LINES, 0)
    output = File.objects.get(pk=done.output_file_id)
    with service.storage.files().open(output.storage_name) as handle:
        answers = [json.loads(line) for line in handle.read().splitlines()]
    assert [a["custom_id"] for a in answers] == [f"c{i}" for i in range(LINES)]
    assert {a["response"]["body"]["choices"][0]["message"]["content"] for a in answers} == {"Hello"}


def _embeddings_batch(owner, engine_name: str, count: int) -> Batch:
    body = b"".join(
        json.dumps(
            {"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
             "body": {"model": engine_name, "input": f"text {i}", "dimensions": 4}}
        ).encode() + b"\n"
        for i in range(count)
    )  # fmt: skip
    source = service.file_create(
        owner=owner, purpose=File.Purpose.BATCH, filename="e.jsonl", content=ContentFile(body), size=len(body)
    )
    return service.batch_create(
        owner=owner, engines=frozenset(), input_file=source, endpoint="/v1/embeddings",
        completion_window="24h", metadata=None,
    )  # fmt: skip


# Transactional: the lines are answered on the worker's loop, whose database connection is not
# the test's, and must see the engine's limit.
@pytest.mark.django_db(transaction=True)
def test_embedding_lines_wait_at_class_batch_for_a_busy_engine_then_are_answered_once(batch, spool_env):
    """Lines waiting for a slot past their step's wait are not recorded (the file offset stays),
    and are answered at a later step, once the engine has room; each answer kept once."""
    import time

    from jobs.models import Engine
    from jobs.placement import INTERACTIVE
    from jobs.scheduling import admission

    spool_env(SPOOL_BATCH_STALE_SECONDS=2)  # each step waits 1 s for a slot
    Engine.objects.filter(name="spool-offline").update(max_concurrency=1)
    engine = Engine.objects.get(name="spool-offline")
    held = admission.Ticket("held-by-a-job", INTERACTIVE, "someone", 1, 1, time.time() + 60)
    admission.submit(engine, held)  # the engine's one slot, taken
    try:
        embeds = _embeddings_batch(batch.owner, "spool-offline", 3)
        _step(embeds)  # validating
        _step(embeds)
        embeds.refresh_from_db()
        assert (embeds.lines_started, embeds.read_offset) == (0, 0)
        assert not BatchLine.objects.filter(batch=embeds).exists()
        status = admission.status(engine, "held-by-a-job")
        assert status.state == "admitted"
    finally:
        admission.release(engine, "held-by-a-job", None)

    _step(embeds)
    _step(embeds, embeds.runner_token)  # again, as a redelivered message would: nothing more
    lines = list(BatchLine.objects.filter(batch=embeds).order_by("line"))
    assert [(line.custom_id, line.job_id) for line in lines] == [("e0", None), ("e1", None), ("e2", None)]
    assert all(len(line.answer["data"][0]["embedding"]) == 4 for line in lines)
    while _step(embeds) is not None:
        pass
    embeds.refresh_from_db()
    assert (embeds.status, embeds.completed, embeds.failed) == (Batch.Status.COMPLETED, 3, 0)
