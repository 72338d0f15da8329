"""Writes of the Batch API: files stored and deleted, batches created and cancelled."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from jobs import queueing
from jobs.batches import runner, storage
from jobs.batches.models import Batch, File, file_expiry


def file_create(
    *, owner: User, purpose: str, filename: str, content: Any, size: int, expires_seconds: int | None = None
) -> File:
    """Stores `content` (a Django File, streamed in chunks) and records it, expiring after
    `expires_seconds` (else the default, models.file_expiry)."""
    row = File(
        owner=owner, purpose=purpose, filename=filename, bytes=size, expires_at=file_expiry(expires_seconds)
    )
    row.storage_name = storage.save(f"uploads/{owner.pk}/{row.pk.hex}.jsonl", content)
    try:
        row.save()
    except BaseException:
        storage.delete(row.storage_name)
        raise
    return row


class FileInUse(Exception):
    """The input of a batch that has not ended: it reads the file until then."""

    def __init__(self, batch: Batch) -> None:
        super().__init__(batch)
        self.batch = batch


def file_delete(*, file: File) -> None:
    """The row goes now and its bytes once that is committed. Raises FileInUse for the input
    of a batch still running."""
    reader = Batch.objects.filter(input_file_id=file.pk).exclude(status__in=Batch.ENDED).first()
    if reader is not None:
        raise FileInUse(reader)
    name = file.storage_name
    with transaction.atomic():
        file.delete()
        transaction.on_commit(lambda: storage.delete(name))


@transaction.atomic
def batch_create(
    *,
    owner: User,
    engines: frozenset[str],
    input_file: File,
    endpoint: str,
    completion_window: str,
    metadata: dict[str, str] | None,
    output_expires_seconds: int | None = None,
) -> Batch:
    """A batch, validating once committed; its output and error files expire after
    `output_expires_seconds` (else the default, models.file_expiry)."""
    batch = Batch.objects.create(
        output_expires_seconds=output_expires_seconds,
        owner=owner,
        engines=sorted(engines),
        input_file_id=input_file.pk,
        endpoint=endpoint,
        completion_window=completion_window,
        metadata=metadata,
        expires_at=timezone.now() + timedelta(seconds=settings.SPOOL.batches.window_seconds),
        runner_token=runner.new_token(),
        advanced_at=timezone.now(),
    )
    token = batch.runner_token
    transaction.on_commit(lambda: queueing.send_batch(str(batch.pk), token))
    return batch


def batch_cancel(*, batch: Batch) -> Batch:
    """cancelling (then cancelled once its running lines have stopped); an ended batch, or one
    already cancelling, stays as it is."""
    now = timezone.now()
    active = Batch.objects.filter(pk=batch.pk, ending="").exclude(
        status__in=[*Batch.ENDED, Batch.Status.FINALIZING]
    )
    active.update(status=Batch.Status.CANCELLING, ending="cancelled", cancelling_at=now)
    batch.refresh_from_db()
    return batch
