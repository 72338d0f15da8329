"""A job's transitions, the same for every path that makes one: the runner (its generation
ended), the sweeper (its worker was lost: `end_lost`, `requeue_lost`) and a cancel or an expiry
(while it was queued: `end_queued`). A job's slot of a limited engine is its caller's to give
back (jobs.scheduling.admission imports this module for its expiries).

Each path makes its own guarded update of the row (a status it expects, so only one path ever
ends a job); then, inside that transaction, `ended` keeps what the owner asked to keep and writes
the job's webhook events, the same for every path (tests/jobs/test_lifecycle.py runs each path
for each face, stored or not)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from engine.types import CONTENT, ERROR, USAGE, ChunkDict
from jobs import chunklog, metrics, responses
from jobs.completions import completion_store
from jobs.models import Job
from jobs.responses.store import response_store
from jobs.results import ResultBuilder
from jobs.types import Usage
from jobs.webhooks.events import job_ended

log = logging.getLogger(__name__)


def ended(job: Job, *, wants_events: bool = True) -> None:
    """Called inside the transaction whose guarded update ended `job` (its face and options
    loaded). `store: true` keeps a Responses job as a stored response and any other face's as a
    stored completion; the owner's webhook endpoints get the job's events unless the caller
    already knows there are none (`wants_events`)."""
    if job.options.get("store"):
        if job.face == responses.FACE:
            response_store(job=job)
        else:
            completion_store(job=job)
    if wants_events:
        job_ended(job.pk)


def ended_by_id(job_id: str) -> None:
    """`ended` for a path that updated the row by id (the sweeper, a cancel, an expiry), which
    also counts the job's end as the runner does once its end is committed."""
    job = (
        Job.objects.select_related("engine")
        .only("id", "face", "options", "status", "started_at", "finished_at", "engine__name")
        .get(pk=job_id)
    )
    ended(job)
    duration = metrics.seconds_between(job.started_at, job.finished_at)
    transaction.on_commit(
        lambda: metrics.job_ended(engine=job.engine.name, status=job.status, duration=duration, ttft=None)
    )


def estimated_usage(written: Iterable[ChunkDict]) -> Usage:
    """The usage of a job whose engine gave none (it failed early, or its worker was lost): the
    content chunks it wrote, marked estimated."""
    produced = sum(1 for chunk in written if chunk["type"] == CONTENT)
    return {"input_tokens": 0, "output_tokens": produced, "estimated": True}


def error_chunk(code: str, message: str) -> ChunkDict:
    """A terminal chunk for a job that did not finish."""
    return {"type": ERROR, "data": {"code": code, "message": message}}


def end_queued(job_id: str, status: str, code: str, message: str) -> bool:
    """End a job that never started (cancelled, or expired while it waited): one terminal chunk
    with `code`, and what `ended` keeps. False when it was not queued any more (a worker took
    it, or another path ended it first)."""
    terminal = error_chunk(code, message)
    with transaction.atomic():
        ended_here = Job.objects.filter(id=job_id, status=Job.Status.QUEUED).update(
            status=status,
            finished_at=timezone.now(),
            finish_reason=code,
            error=message,
            result={"choices": [], "usage": None},
            chunks=[terminal],
        )
        if ended_here:
            ended_by_id(job_id)
    if ended_here:
        chunklog.append(job_id, [terminal])
    return bool(ended_here)


# ---- a job whose worker is gone (found by jobs.sweeper) --------------------------------------

DEAD_WORKER = "The worker running this job stopped before it finished."


def requeue_lost(job_id: str) -> bool:
    """A running job whose worker was lost before any output goes back to queued, to run again
    from the start. False when it was not running any more."""
    queued = Job.objects.filter(id=job_id, status=Job.Status.RUNNING).update(
        status=Job.Status.QUEUED, started_at=None
    )
    if queued:
        log.warning("job %s lost its worker before any output; running it again", job_id)
    return bool(queued)


def end_lost(job_id: str, written: list[ChunkDict], n: int) -> bool:
    """End a running job whose worker was lost after it wrote `written`: its output is kept,
    with an estimated usage and one `worker_lost` chunk. False when it was not running any more
    (it ended meanwhile, or another sweeper ended it first)."""
    builder = ResultBuilder(n)
    for chunk in written:
        builder.add(chunk)
    usage_data = estimated_usage(written)
    usage: ChunkDict = {"type": USAGE, "data": dict(usage_data)}
    terminal = error_chunk("worker_lost", DEAD_WORKER)
    with transaction.atomic():
        updated = Job.objects.filter(id=job_id, status=Job.Status.RUNNING).update(
            status=Job.Status.FAILED,
            finished_at=timezone.now(),
            finish_reason="worker_lost",
            error=DEAD_WORKER,
            usage=usage_data,
            result=builder.build([None] * n, usage_data),
            chunks=[*written, usage, terminal],
        )
        if updated:
            ended_by_id(job_id)
    if updated:
        log.warning("job %s lost its worker after %d chunks; ended it", job_id, len(written))
        chunklog.append(job_id, [usage, terminal])
    return bool(updated)
