"""Stored responses: kept at job end (store: true), read by their owner and deleted (purged after
SPOOL_RESPONSES_RETENTION_DAYS by jobs/retention.py)."""

from __future__ import annotations

from jobs.completions import items_page
from jobs.jobview import JobView
from jobs.models import Job, StoredResponse
from jobs.paging import Page
from jobs.responses import response_id
from jobs.responses.events import fold


def stored_response(job: Job) -> StoredResponse:
    """What a finished job keeps as its stored response (not saved): built from the job as given,
    its engine loaded, no field deferred and the end's values set, so every path that ends a job
    keeps the same row (lifecycle.ended with the ORM, the worker's end statement in SQL)."""
    state, _ = fold(JobView.of(job), job.chunks or [])
    return StoredResponse(
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


def input_page(job: JobView, *, after: str | None, limit: int, order: str) -> Page:
    """One page of the input items a response was asked with."""
    return items_page(job.options.get("input") or [], after=after, limit=limit, order=order)
