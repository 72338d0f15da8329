"""Files (the Batch API's input and output JSONL), batches and each batch's lines: what Postgres
keeps so that a batch survives any process's death and runs each line exactly once."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


def file_expiry(seconds: int | None) -> datetime | None:
    """When a batch file made now expires: after `seconds` (its request's policy), else after
    SPOOL_BATCH_FILE_SECONDS; None when neither sets one."""
    after = seconds or settings.SPOOL.batches.file_seconds
    return timezone.now() + timedelta(seconds=after) if after else None


class File(models.Model):
    """A file an owner uploaded (purpose "batch") or a batch wrote (purpose "batch_output"); its
    bytes are in the `spool_files` storage under `storage_name`."""

    class Purpose(models.TextChoices):
        BATCH = "batch"
        BATCH_OUTPUT = "batch_output"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="files")
    purpose = models.CharField(max_length=32, choices=Purpose.choices)
    filename = models.CharField(max_length=512)
    bytes = models.BigIntegerField()
    storage_name = models.CharField(max_length=1024, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # When retention deletes it (None: kept until its owner deletes it).
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "created_at", "id"], name="file_owner_created"),
            models.Index(
                fields=["expires_at"], name="file_expiring", condition=models.Q(expires_at__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return self.filename


class Batch(models.Model):
    class Status(models.TextChoices):
        VALIDATING = "validating"
        FAILED = "failed"
        IN_PROGRESS = "in_progress"
        FINALIZING = "finalizing"
        COMPLETED = "completed"
        EXPIRED = "expired"
        CANCELLING = "cancelling"
        CANCELLED = "cancelled"

    ENDED = (Status.FAILED, Status.COMPLETED, Status.EXPIRED, Status.CANCELLED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="batches")
    endpoint = models.CharField(max_length=64)
    # Plain ids, not foreign keys: a deleted file leaves the batch's record of it as it was.
    input_file_id = models.UUIDField()
    output_file_id = models.UUIDField(null=True, blank=True)
    error_file_id = models.UUIDField(null=True, blank=True)
    completion_window = models.CharField(max_length=8, default="24h")
    # How long its output and error files are kept after they are written (None: the default).
    output_expires_seconds = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.VALIDATING)
    metadata = models.JSONField(null=True, blank=True)
    # The engines the creating key may use (empty: every one), applied to each line's job.
    engines = models.JSONField(default=list, blank=True)
    # Validation errors ({code, message, param, line}), when it failed validation.
    errors = models.JSONField(null=True, blank=True)
    # What ends the lines still to run at finalizing: "" (they all ran), "cancelled", "expired".
    ending = models.CharField(max_length=16, blank=True, default="")
    total = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # The input file is read from here on: lines before it have their BatchLine (and job).
    lines_started = models.PositiveIntegerField(default=0)
    read_offset = models.BigIntegerField(default=0)
    # Only the task message carrying this token advances the batch: one chain of steps at once,
    # whatever duplicate or re-sent messages exist.
    runner_token = models.CharField(max_length=32, blank=True, default="")
    advanced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    in_progress_at = models.DateTimeField(null=True, blank=True)
    finalizing_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    cancelling_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "created_at", "id"], name="batch_owner_created"),
            models.Index(
                fields=["advanced_at"],
                name="batch_running",
                condition=~models.Q(status__in=["failed", "completed", "expired", "cancelled"]),
            ),
        ]

    def __str__(self) -> str:
        return str(self.id)

    @property
    def is_ended(self) -> bool:
        return self.status in self.ENDED


class BatchLine(models.Model):
    """One line of a batch's input, written with its job (or its answer, or its refusal) in one
    transaction: (batch, custom_id) is unique, so a line is started once whatever restarts happen."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="lines")
    line = models.PositiveIntegerField(help_text="Its line number in the input file, from 1.")
    custom_id = models.CharField(max_length=512)
    job = models.ForeignKey(
        "jobs.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="batch_lines"
    )
    # A line refused before it became a job: {"status_code", "body"} as the endpoint answered.
    refused = models.JSONField(null=True, blank=True)
    # The answer of a line its endpoint answers without a job (embeddings): the response body.
    answer = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "line"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "custom_id"], name="batchline_once"),
        ]
        indexes = [models.Index(fields=["batch", "line"], name="batchline_order")]

    def __str__(self) -> str:
        return f"{self.batch_id} {self.custom_id}"
