"""An engine's fallback: a job its engine failed before the first chunk (its upstream refused,
answered 5xx or timed out, on every deployment) moves to the engine named as its fallback and
waits there as a new job would, in that engine's queue if it has limits. Never to an engine the
job already tried, so a ring of fallbacks ends."""

from __future__ import annotations

import logging

from django.db import transaction

from jobs import chunklog, queueing
from jobs.jobview import live_meta
from jobs.models import Engine, Job
from jobs.scheduling import admission

log = logging.getLogger(__name__)


def take_over(job: Job) -> bool:
    """Move the running job to its engine's fallback, queued; False when there is none to try
    (the job then ends with its failure)."""
    tried = {*job.options.get("engines_tried", ()), str(job.engine_id)}
    fallback_id = Engine.objects.filter(pk=job.engine_id).values_list("fallback", flat=True).first()
    target = Engine.objects.filter(pk=fallback_id, is_active=True).first() if fallback_id else None
    if target is None or str(target.pk) in tried:
        return False
    options = {**job.options, "engines_tried": sorted(tried)}
    with transaction.atomic():
        moved = Job.objects.filter(id=job.pk, status=Job.Status.RUNNING).update(
            engine=target, status=Job.Status.QUEUED, started_at=None, options=options
        )
    if not moved:
        return False
    log.warning(
        "job %s: engine %s failed before its first chunk; its fallback %s takes it",
        job.pk,
        job.engine.name,
        target.name,
    )
    job.engine, job.options = target, options
    # Readers render the job with the engine that answers it.
    chunklog.write_meta(str(job.pk), live_meta(Job.objects.select_related("engine").get(pk=job.pk)))
    if target.is_limited:
        admission.submit(target, admission.ticket_of(job), first=True)
    else:
        queueing.send_job(str(job.pk))
    return True
