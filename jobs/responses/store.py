"""Stored responses: kept at job end (store: true), read by their owner and deleted (purged after
SPOOL_RESPONSES_RETENTION_DAYS by jobs/retention.py)."""

from __future__ import annotations

from jobs.completions import items_page
from jobs.models import Job, StoredResponse
from jobs.paging import Page
from jobs.responses import response_id
from jobs.responses.events import fold


def response_store(*, job: Job) -> StoredResponse:
    """Keep a finished job as a stored response. Called by the runner inside the transaction
    that ends the job, so the job row read here already has its archived log."""
    job = Job.objects.select_related("engine").get(pk=job.pk)
    state, _ = fold(job, job.chunks or [])
    stored, _ = StoredResponse.objects.update_or_create(
        id=response_id(job.pk),
        defaults={
            "owner_id": job.owner_id,
            "job": job,
            "engine": job.engine,
            "model": job.engine.name,
            "metadata": job.options.get("metadata") or {},
            "response": state.snapshot(),
            "usage": job.usage,
            "status": state.status,
            "created_at": job.created_at,
        },
    )
    return stored


def input_page(job: Job, *, after: str | None, limit: int, order: str) -> Page:
    """One page of the input items a response was asked with."""
    return items_page(job.options.get("input") or [], after=after, limit=limit, order=order)
