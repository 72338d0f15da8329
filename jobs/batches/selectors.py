"""Reads of the Batch API: an owner's files and batches, one or a page at a time."""

from __future__ import annotations

from typing import Any

from jobs.batches.ids import BATCH_PREFIX, FILE_PREFIX, pk_of
from jobs.batches.models import Batch, File
from jobs.models import Job
from jobs.paging import Page, keyset_page


def file_for_owner(file_id: str, owner_id: int) -> File | None:
    pk = pk_of(FILE_PREFIX, file_id)
    return None if pk is None else File.objects.filter(pk=pk, owner_id=owner_id).first()


def batch_for_owner(batch_id: str, owner_id: int) -> Batch | None:
    pk = pk_of(BATCH_PREFIX, batch_id)
    return None if pk is None else Batch.objects.filter(pk=pk, owner_id=owner_id).first()


def file_page(owner_id: int, *, purpose: str | None, **page: Any) -> Page:
    query = File.objects.filter(owner_id=owner_id)
    if purpose:
        query = query.filter(purpose=purpose)
    return keyset_page(query, FILE_PREFIX, **page)


def batch_page(owner_id: int, **page: Any) -> Page:
    return keyset_page(Batch.objects.filter(owner_id=owner_id), BATCH_PREFIX, **page)


def job_page(owner_id: int, *, batch: str | None = None, status: str | None = None, **page: Any) -> Page:
    """One page of the owner's jobs, those of one batch (its lines' jobs) when `batch` names one;
    a batch id that is not the owner's lists nothing, as an unknown one does."""
    query = Job.objects.filter(owner_id=owner_id).select_related("engine")
    if batch is not None:
        batch_pk = pk_of(BATCH_PREFIX, batch)
        if batch_pk is None:
            return Page([], False)
        query = query.filter(batch_lines__batch_id=batch_pk)
    if status:
        query = query.filter(status=status)
    return keyset_page(query, "", **page)
