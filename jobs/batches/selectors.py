"""Reads of the Batch API: an owner's files and batches, one or a page at a time."""

from __future__ import annotations

from typing import Any

from jobs.batches.ids import BATCH_PREFIX, FILE_PREFIX, pk_of
from jobs.batches.models import Batch, File
from jobs.completions import Page
from jobs.webhooks.endpoints import _page


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
    return _page(query, FILE_PREFIX, **page)


def batch_page(owner_id: int, **page: Any) -> Page:
    return _page(Batch.objects.filter(owner_id=owner_id), BATCH_PREFIX, **page)
