"""Stored responses: kept at job end (store: true), read by their owner and deleted (purged after
SPOOL_RESPONSES_RETENTION_DAYS by jobs/retention.py)."""

from __future__ import annotations

from jobs.completions import items_page
from jobs.jobview import JobView
from jobs.models import Job, StoredResponse
from jobs.paging import Page
from jobs.responses import response_id
from jobs.responses.events import fold


def response_store(*, job: Job) -> StoredResponse:
    """Keep a finished job as a stored response. Called inside the transaction that ends the
    job: with the job as the runner holds it, ended fields set (nothing read back), or else read
    here, where the row already has its archived log. One statement: an insert that updates a
    row already there."""
    if job.get_deferred_fields() or not Job._meta.get_field("engine").is_cached(job):
        job = Job.objects.select_related("engine").get(pk=job.pk)
    state, _ = fold(JobView.of(job), job.chunks or [])
    stored = StoredResponse(
        id=response_id(job.pk),
        owner_id=job.owner_id,
        job=job,
        engine=job.engine,
        model=job.engine.name,
        metadata=job.options.get("metadata") or {},
        response=state.snapshot(),
        usage=job.usage,
        status=state.status,
        created_at=job.created_at,
    )
    StoredResponse.objects.bulk_create(
        [stored], update_conflicts=True, unique_fields=["id"], update_fields=_UPDATED
    )
    return stored


_UPDATED = ["owner", "job", "engine", "model", "metadata", "response", "usage", "status", "created_at"]


def input_page(job: JobView, *, after: str | None, limit: int, order: str) -> Page:
    """One page of the input items a response was asked with."""
    return items_page(job.options.get("input") or [], after=after, limit=limit, order=order)
