"""Retention and erasure of the Batch API against real Postgres and the filesystem storage: a file
past its expires_at goes with its bytes, unless a running batch still reads it; an ended batch
past SPOOL_JOB_RETENTION_DAYS goes with its lines; erasing a user takes their batches and files."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from jobs import erasure, retention, services
from jobs.batches import service, storage
from jobs.batches.models import Batch, BatchLine, File

pytestmark = pytest.mark.django_db
PAST = timezone.now() - timedelta(days=31)


@pytest.fixture(autouse=True)
def files_dir(spool_env, settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "spool_files": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    spool_env(SPOOL_JOB_RETENTION_DAYS=30)
    return tmp_path


def a_file(owner, *, expired: bool = False, seconds: int | None = None) -> File:
    body = b'{"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {"model": "m"}}\n'
    made = service.file_create(
        owner=owner, purpose=File.Purpose.BATCH, filename="in.jsonl", content=ContentFile(body),
        size=len(body), expires_seconds=seconds,
    )  # fmt: skip
    if expired:
        File.objects.filter(pk=made.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    return made


def a_batch(owner, source: File, status: str = Batch.Status.COMPLETED, created: object = None) -> Batch:
    batch = service.batch_create(
        owner=owner, engines=frozenset(), input_file=source, endpoint="/v1/embeddings",
        completion_window="24h", metadata=None,
    )  # fmt: skip
    BatchLine.objects.create(batch=batch, line=1, custom_id="a", answer={"data": []})
    Batch.objects.filter(pk=batch.pk).update(status=status, created_at=created or timezone.now())
    return batch


def stored(file: File) -> bool:
    return storage.files().exists(file.storage_name)


def test_a_batch_file_expires_after_its_policy_or_the_default(spool_env):
    owner = services.user_ensure(username="files")
    made, asked = a_file(owner), a_file(owner, seconds=3600)
    assert made.expires_at is not None and asked.expires_at is not None
    assert abs((made.expires_at - made.created_at) - timedelta(days=30)) < timedelta(seconds=5)
    assert abs((asked.expires_at - asked.created_at) - timedelta(hours=1)) < timedelta(seconds=5)
    spool_env(SPOOL_BATCH_FILE_SECONDS=0)
    assert a_file(owner).expires_at is None  # kept until deleted


def test_an_expired_file_goes_with_its_bytes_unless_a_running_batch_reads_it():
    owner = services.user_ensure(username="expiring")
    gone, read, fresh = a_file(owner, expired=True), a_file(owner, expired=True), a_file(owner)
    running = a_batch(owner, read, status=Batch.Status.IN_PROGRESS)

    done = retention.purge()

    assert done["files"] == 1
    assert not File.objects.filter(pk=gone.pk).exists() and not stored(gone)
    assert File.objects.filter(pk=read.pk).exists() and stored(read)
    assert File.objects.filter(pk=fresh.pk).exists() and stored(fresh)

    Batch.objects.filter(pk=running.pk).update(status=Batch.Status.COMPLETED)
    assert retention.purge()["files"] == 1  # its batch ended: now it goes
    assert not stored(read)


def test_an_ended_batch_past_retention_goes_with_its_lines_and_a_running_or_recent_one_stays():
    owner = services.user_ensure(username="batches")
    source = a_file(owner)
    old = a_batch(owner, source, created=PAST)
    old_running = a_batch(owner, source, status=Batch.Status.IN_PROGRESS, created=PAST)
    recent = a_batch(owner, source)

    assert retention.purge()["batches"] == 1

    assert not Batch.objects.filter(pk=old.pk).exists()
    assert not BatchLine.objects.filter(batch_id=old.pk).exists()
    assert set(Batch.objects.filter(owner=owner).values_list("pk", flat=True)) == {old_running.pk, recent.pk}
    assert BatchLine.objects.filter(batch_id=recent.pk).exists()


def test_erasing_a_user_takes_their_batches_and_files_with_the_bytes_and_nothing_of_another():
    leaving, staying = services.user_ensure(username="leaving"), services.user_ensure(username="staying")
    theirs, ours = a_file(leaving), a_file(staying)
    a_batch(leaving, theirs, status=Batch.Status.IN_PROGRESS)
    kept = a_batch(staying, ours)
    assert erasure.counts(leaving)["batches"] == 1 and erasure.counts(leaving)["files"] == 1

    done = erasure.erase(leaving, wait=0)

    assert (done["batches"], done["files"]) == (1, 1)
    assert not stored(theirs) and stored(ours)
    assert list(Batch.objects.values_list("pk", flat=True)) == [kept.pk]
