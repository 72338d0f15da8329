"""Where a queued job of a limited engine waits, as the native job view shows it: asked of the
engine's scheduler (jobs.scheduling.admission) only for such a job."""

from __future__ import annotations

from typing import TypedDict

from jobs.models import Job
from jobs.scheduling import admission
from jobs.scheduling.placement import DEFAULT


class QueueView(TypedDict):
    """Where a queued job of a limited engine waits (jobs.scheduling.admission.status)."""

    priority: str
    state: str  # waiting, admitted (on its way to a worker), running (a worker starts it), or ""
    reason: str  # why the engine admits nothing now: engine_full, rate_limited, held, or ""
    ahead: int | None  # jobs before it in its owner's queue of its class; None: not waiting


def may_wait(job: Job) -> bool:
    """A job the engine's queue may hold: queued, on an engine with limits."""
    return job.status == Job.Status.QUEUED and job.engine.is_limited


def queue_of(job: Job) -> QueueView | None:
    if not may_wait(job):
        return None
    status = admission.status(job.engine, str(job.pk))
    return {
        "priority": status.priority or job.options.get("priority") or DEFAULT,
        "state": status.state,
        "reason": status.reason,
        "ahead": status.ahead,
    }
