"""How a job's end is kept, the same for every path that ends one: the runner (its generation
ended), the sweeper (its worker was lost) and a cancel (while it was queued).

Each path makes its own guarded update of the row (a status it expects, so only one path ever
ends a job); then, inside that transaction, `ended` keeps what the owner asked to keep and writes
the job's webhook events. Before this module the three paths disagreed: the sweeper and a cancel
stored Responses only, so a stored chat completion whose worker was lost was never stored."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from engine.types import CONTENT, ERROR, ChunkDict
from jobs import chunklog, responses
from jobs.completions import completion_store
from jobs.models import Job
from jobs.responses.store import response_store
from jobs.types import Usage
from jobs.webhooks.events import job_ended


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
    """`ended` for a path that updated the row by id (the sweeper, a cancel)."""
    ended(Job.objects.only("id", "face", "options").get(pk=job_id))


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
