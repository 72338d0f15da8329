"""A file and a batch as OpenAI's API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jobs.batches.ids import BATCH_PREFIX, FILE_PREFIX, public_id
from jobs.batches.models import Batch, File


def _unix(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp())


def file_object(file: File) -> dict[str, Any]:
    return {
        "id": public_id(FILE_PREFIX, file.pk),
        "object": "file",
        "bytes": file.bytes,
        "created_at": _unix(file.created_at),
        "expires_at": _unix(file.expires_at) if file.expires_at else None,
        "filename": file.filename,
        "purpose": file.purpose,
        # Deprecated in OpenAI's API, still sent: a stored file is always processed here.
        "status": "processed",
        "status_details": None,
    }


def _file_id(pk: Any) -> str | None:
    return None if pk is None else public_id(FILE_PREFIX, pk)


def batch_object(batch: Batch) -> dict[str, Any]:
    return {
        "id": public_id(BATCH_PREFIX, batch.pk),
        "object": "batch",
        "endpoint": batch.endpoint,
        "errors": None if not batch.errors else {"object": "list", "data": batch.errors},
        "input_file_id": public_id(FILE_PREFIX, batch.input_file_id),
        "completion_window": batch.completion_window,
        "status": batch.status,
        "output_file_id": _file_id(batch.output_file_id),
        "error_file_id": _file_id(batch.error_file_id),
        "created_at": _unix(batch.created_at),
        "in_progress_at": _unix(batch.in_progress_at),
        "expires_at": _unix(batch.expires_at),
        "finalizing_at": _unix(batch.finalizing_at),
        "completed_at": _unix(batch.completed_at),
        "failed_at": _unix(batch.failed_at),
        "expired_at": _unix(batch.expired_at),
        "cancelling_at": _unix(batch.cancelling_at),
        "cancelled_at": _unix(batch.cancelled_at),
        "request_counts": {"total": batch.total, "completed": batch.completed, "failed": batch.failed},
        "metadata": batch.metadata,
    }
