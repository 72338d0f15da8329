"""Retention of the Batch API (called by jobs.retention.purge): files past their expires_at go,
bytes first, then rows, except the input of a batch still running, which goes once it ends; ended
batches older than SPOOL_JOB_RETENTION_DAYS go with their lines (whose jobs retention deletes on
their own). A file deleted here is gone from storage, so the batch's record of it keeps its id
and nothing more (as after its owner deleted it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from jobs.batches import storage
from jobs.batches.models import Batch, BatchLine, File

# jobs.retention's own helpers, handed in (it imports this module): the windows of a table's rows
# to delete and the observed DELETE.
Windows = Callable[..., Iterator[list[Any]]]
Execute = Callable[[str, str, Sequence[Any]], int]

FILES, BATCHES, LINES = File._meta.db_table, Batch._meta.db_table, BatchLine._meta.db_table
_ENDED = "(" + ", ".join(f"'{status}'" for status in Batch.ENDED) + ")"
_UNREAD = f"NOT EXISTS (SELECT 1 FROM {BATCHES} b WHERE b.input_file_id = t.id AND b.status NOT IN {_ENDED})"
_DELETE_BATCHES = f"""
WITH lines AS (DELETE FROM {LINES} WHERE batch_id = ANY(%s))
DELETE FROM {BATCHES} WHERE id = ANY(%s)
"""
# Batches per statement: each takes its lines along, up to SPOOL_BATCH_MAX_LINES of them.
BATCHES_AT_ONCE = 20


def delete_files(file_ids: Sequence[Any], execute: Execute) -> int:
    """The files' bytes, then their rows (a failure in storage leaves the rows for next time)."""
    if not file_ids:
        return 0
    for name in File.objects.filter(pk__in=list(file_ids)).values_list("storage_name", flat=True):
        storage.delete(name)
    return execute("files", f"DELETE FROM {FILES} WHERE id = ANY(%s)", [list(file_ids)])


def purge_files(*, now: datetime, windows: Windows, execute: Execute, batch: int) -> int:
    return sum(
        delete_files(ids, execute)
        for ids in windows(FILES, where="t.expires_at < %s", params=[now], batch=batch, flag=_UNREAD)
    )


def delete_batches(batch_ids: Sequence[Any], execute: Execute) -> int:
    """The batches with their lines (not their files, nor their lines' jobs)."""
    if not batch_ids:
        return 0
    return execute("batches", _DELETE_BATCHES, [list(batch_ids), list(batch_ids)])


def purge_batches(*, now: datetime, windows: Windows, execute: Execute) -> int:
    days = settings.SPOOL.retention.job_days
    if days <= 0:
        return 0
    where = f"t.created_at < %s AND t.status IN {_ENDED}"
    cutoff = [now - timedelta(days=days)]
    return sum(
        delete_batches(ids, execute)
        for ids in windows(BATCHES, where=where, params=cutoff, batch=BATCHES_AT_ONCE)
    )


def erase(owner_id: int, *, windows: Windows, execute: Execute, batch: int) -> dict[str, int]:
    """Every batch and file of one user (jobs.erasure), whatever their state: a running batch's
    runner finds its batch gone and stops."""
    owner = [owner_id]
    return {
        "batches": sum(
            delete_batches(ids, execute)
            for ids in windows(BATCHES, where="t.owner_id = %s", params=owner, batch=BATCHES_AT_ONCE)
        ),
        "files": sum(
            delete_files(ids, execute)
            for ids in windows(FILES, where="t.owner_id = %s", params=owner, batch=batch)
        ),
    }
