"""Ends jobs whose worker is gone (its heartbeat expired) and re-sends jobs and webhook
deliveries whose queue message was lost. Safe to run anywhere, any number of times: every
change is guarded by a row count."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from engine.types import USAGE, ChunkDict
from jobs import chunklog, lifecycle, queueing
from jobs.models import Job
from jobs.periodic import start_periodic
from jobs.results import ResultBuilder
from jobs.webhooks import delivery as webhook_delivery

log = logging.getLogger(__name__)


DEAD_WORKER = "The worker running this job stopped before it finished."


def _grace() -> float:
    # A worker that has just claimed a job has this long to write its first heartbeat.
    return float(settings.SPOOL_HEARTBEAT_TTL_SECONDS)


def sweep() -> dict:
    now = timezone.now()
    grace_seconds, requeue_after = _grace(), settings.SPOOL_REQUEUE_AFTER_SECONDS
    running = list(
        Job.objects.filter(status=Job.Status.RUNNING, started_at__lt=now - timedelta(seconds=grace_seconds))
        .values_list("id", "request__n")
        .order_by("started_at")[:500]
    )
    ended = retried = 0
    if running:
        for (job_id, n), is_alive in zip(running, chunklog.alive([str(i) for i, _ in running]), strict=True):
            if is_alive:
                continue
            if _end_or_retry(str(job_id), n or 1):
                ended += 1
            else:
                retried += 1
    stale = list(
        Job.objects.filter(
            status=Job.Status.QUEUED, created_at__lt=now - timedelta(seconds=requeue_after)
        ).values_list("id", flat=True)[:500]
    )
    for job_id in stale:
        _enqueue(str(job_id))
    return {
        "ended": ended,
        "retried": retried,
        "requeued": len(stale),
        "webhooks_resent": webhook_delivery.send_overdue(),
    }


def _enqueue(job_id: str) -> None:
    queueing.send_job(job_id)


def _end_or_retry(job_id: str, n: int) -> bool:
    """True when the job was ended; False when it had written nothing and was queued again."""
    written = chunklog.read_all(job_id)
    if not written:
        if Job.objects.filter(id=job_id, status=Job.Status.RUNNING).update(
            status=Job.Status.QUEUED, started_at=None
        ):
            log.warning("job %s lost its worker before any output; running it again", job_id)
            transaction.on_commit(lambda: _enqueue(job_id))
        return False
    builder = ResultBuilder(n)
    for chunk in written:
        builder.add(chunk)
    usage_data = lifecycle.estimated_usage(written)
    usage: ChunkDict = {"type": USAGE, "data": dict(usage_data)}
    terminal = lifecycle.error_chunk("worker_lost", DEAD_WORKER)
    with transaction.atomic():
        updated = Job.objects.filter(id=job_id, status=Job.Status.RUNNING).update(
            status=Job.Status.FAILED,
            finished_at=timezone.now(),
            finish_reason="worker_lost",
            error=DEAD_WORKER,
            usage=usage_data,
            result=builder.build([None] * n, usage_data),
            chunks=[*written, usage, terminal],
        )
        if updated:
            lifecycle.ended_by_id(job_id)
    if updated:
        log.warning("job %s lost its worker after %d chunks; ended it", job_id, len(written))
        chunklog.append(job_id, [usage, terminal])
    return True


def end_if_dead(job: Job) -> bool:
    """For a reader that waited on a running job and heard nothing: end it now if its worker is
    gone, so a job never hangs for want of a sweeper. True when it was handled."""
    if job.started_at is None or (timezone.now() - job.started_at).total_seconds() < _grace():
        return False
    if chunklog.alive([str(job.pk)])[0]:
        return False
    _end_or_retry(str(job.pk), job.request.get("n", 1))
    return True


def start_background_sweeper() -> threading.Thread:
    """A daemon thread in each worker process: sweeps at start-up (finding the jobs of a worker
    that died before this one started), then every SPOOL_SWEEP_EVERY_SECONDS."""

    def sweep_and_say() -> None:
        found = sweep()
        if any(found.values()):
            log.warning("sweeper: %s", found)

    return start_periodic("spool-sweeper", sweep_and_say, lambda: settings.SPOOL_SWEEP_EVERY_SECONDS)
