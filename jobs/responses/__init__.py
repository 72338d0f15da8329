"""OpenAI Responses (face "responses"): what the worker side and the /v1 face share — the
response id of a job and its status. Nothing here imports from jobs.faces."""

from __future__ import annotations

import uuid
from typing import Any

FACE = "responses"
ID_PREFIX = "resp_"

QUEUED, IN_PROGRESS, COMPLETED = "queued", "in_progress", "completed"
FAILED, CANCELLED, INCOMPLETE = "failed", "cancelled", "incomplete"
# The finish reason that makes a succeeded job an incomplete response (the output cap).
CUT_SHORT = "length"


def response_id(job_id: Any) -> str:
    """The response id of a job: "resp_" and the job id's 32 hex digits."""
    return ID_PREFIX + uuid.UUID(str(job_id)).hex


def job_id_of(value: str) -> str | None:
    """The job id inside a response id, or None when it is not one of ours."""
    if not value.startswith(ID_PREFIX):
        return None
    digits = value.removeprefix(ID_PREFIX)
    if len(digits) != 32:
        return None
    try:
        return str(uuid.UUID(hex=digits))
    except ValueError:
        return None


def status_of(job_status: str, finish_reason: str | None) -> str:
    """The response status of a job status (jobs.models.Job.Status values)."""
    if job_status == "succeeded":
        return INCOMPLETE if finish_reason == CUT_SHORT else COMPLETED
    return {"queued": QUEUED, "running": IN_PROGRESS, "failed": FAILED, "cancelled": CANCELLED}[job_status]
