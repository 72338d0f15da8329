"""A job's transitions, the same for every path that makes one: the runner (its generation
ended), the sweeper (its worker was lost: `end_lost`, `requeue_lost`) and a cancel or an expiry
(while it was queued: `end_queued`). A job's slot of a limited engine is its caller's to give
back (jobs.scheduling.admission imports this module for its expiries).

Each path makes its own guarded update of the row (a status it expects, so only one path ever
ends a job); then, inside that transaction, `ended` keeps what the owner asked to keep (`kept`)
and writes the job's webhook events, the same for every path (tests/jobs/test_lifecycle.py runs
each path for each face, stored or not). One exception, for its latency: the runner ends a job
whose owner has no enabled webhook endpoint in one statement on its loop, which writes the same
`kept` row in SQL (jobs.worker.statements.end_alone)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Model
from django.utils import timezone

from engine.types import CONTENT, ERROR, USAGE, ChunkDict
from jobs import chunklog, metrics, responses
from jobs.completions import stored_completion
from jobs.models import Job, StoredCompletion, StoredResponse
from jobs.responses.store import stored_response
from jobs.results import ResultBuilder
from jobs.types import Usage
from jobs.webhooks.events import job_ended

log = logging.getLogger(__name__)


Kept = StoredResponse | StoredCompletion


def kept(job: Job) -> Kept | None:
    """What the end of `job` keeps besides its row, unsaved: for `store: true` a stored response
    for a Responses job and a stored completion for any other face's; else nothing. Built from
    the job as given (its engine loaded, no field deferred, the end's values set). The one
    builder for every path: `ended` saves it with the ORM, the runner's end on the worker loop
    writes it in its own statement (jobs.worker.statements)."""
    return _built(job) if job.options.get("store") else None


def _built(job: Job) -> Kept:
    return stored_response(job) if job.face == responses.FACE else stored_completion(job)


def kept_fields(model: type[Kept]) -> list[str]:
    """The fields a writer of a stored row sets besides its id: all but those the database
    computes (not editable: a stored completion's search vector, kept by its trigger)."""
    return [f.name for f in model._meta.concrete_fields if f.editable and not f.primary_key]


def ended(job: Job, *, wants_events: bool = True, built: Kept | None = None) -> None:
    """Called inside the transaction whose guarded update ended `job`. For `store: true` saves
    what it keeps (`built`, when the caller made it already, else `kept` of the job, read whole
    when the caller loaded only part of it) in one statement: an insert that updates a row
    already there. The owner's webhook endpoints get the job's events unless the caller already
    knows there are none (`wants_events`)."""
    if job.options.get("store"):
        if built is None:
            if job.get_deferred_fields() or not Job._meta.get_field("engine").is_cached(job):
                job = Job.objects.select_related("engine").get(pk=job.pk)  # ended by id
            built = _built(job)
        model: type[Model] = type(built)
        model._default_manager.bulk_create(
            [built], update_conflicts=True, unique_fields=["id"], update_fields=kept_fields(type(built))
        )
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
