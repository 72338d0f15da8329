"""Where a queued job of a limited engine waits, as the native job view shows it: asked of the
engine's scheduler (jobs.scheduling.admission) only for such a job."""

from __future__ import annotations

from typing import TypedDict

from jobs.jobview import JobView
from jobs.models import Engine, Job
from jobs.placement import DEFAULT
from jobs.scheduling import admission


class QueueView(TypedDict):
    """Where a queued job of a limited engine waits (jobs.scheduling.admission.status)."""

    priority: str
    state: str  # waiting, admitted (on its way to a worker), running (a worker starts it), or ""
    reason: str  # why the engine admits nothing now: engine_full, rate_limited, held, or ""
    ahead: int | None  # jobs before it in its owner's queue of its class; None: not waiting


def may_wait(job: JobView) -> bool:
    """A job the engine's queue may hold: queued, on an engine with limits."""
    return job.status == Job.Status.QUEUED and job.engine.limited


def queue_of(job: JobView, engine: Engine | None = None) -> QueueView | None:
    """`engine`: the job's, when the caller holds its row (else it is read: the view has no
    limits, which the scheduler's script is given)."""
    if not may_wait(job):
        return None
    status = admission.status(engine or Engine.objects.get(pk=job.engine.id), str(job.id))
    return {
        "priority": status.priority or job.options.get("priority") or DEFAULT,
        "state": status.state,
        "reason": status.reason,
        "ahead": status.ahead,
    }
