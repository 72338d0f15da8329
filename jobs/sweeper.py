"""Ends jobs whose worker is gone (its heartbeat expired) and re-sends jobs and webhook
deliveries whose queue message was lost. Safe to run anywhere, any number of times: every
change is guarded by a row count."""

from __future__ import annotations

import logging
import threading
import uuid
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs import chunklog, lifecycle, metrics, queueing
from jobs.models import Engine, Job
from jobs.periodic import start_periodic
from jobs.scheduling import admission
from jobs.webhooks import delivery as webhook_delivery

log = logging.getLogger(__name__)


def _grace() -> float:
    # A worker that has just claimed a job has this long to write its first heartbeat.
    return float(settings.SPOOL.worker.heartbeat_ttl_seconds)


def sweep() -> dict:
    now = timezone.now()
    grace_seconds, requeue_after = _grace(), settings.SPOOL.worker.requeue_after_seconds
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
            if reap(str(job_id), n or 1):
                ended += 1
            else:
                retried += 1
    limited = list(Engine.limited())
    for engine in limited:
        admission.tick(engine)
        queue = admission.status(engine)
        metrics.engine_queue(engine=engine.name, waiting=queue.waiting, leases=queue.running)
    return {
        "ended": ended,
        "retried": retried,
        "requeued": _send_lost(now - timedelta(seconds=requeue_after), {e.pk: e for e in limited}),
        "webhooks_resent": webhook_delivery.send_overdue(),
    }


# Queued jobs looked at per query, and the most queries per sweep: a limited engine's jobs wait
# queued for as long as their turn takes, so the queued jobs can be many more than the lost ones.
PAGE = 500
MAX_PAGES = 20


def _send_lost(older_than: datetime, limited: dict[uuid.UUID, Engine]) -> int:
    """Send again the queued jobs older than `older_than` that nobody has: on an engine without
    limits, every one (a lost message; the claim drops duplicates); on a limited engine, those
    its queue does not hold (never a job waiting its turn, which would bypass the limits)."""
    sent = 0
    after = Q()
    for _ in range(MAX_PAGES):
        rows = list(
            Job.objects.filter(after, status=Job.Status.QUEUED, created_at__lt=older_than)
            .order_by("created_at", "id")
            .values_list("id", "engine_id", "created_at")[:PAGE]
        )
        waiting: dict[uuid.UUID, list[str]] = defaultdict(list)
        for job_id, engine_id, _ in rows:
            if engine_id in limited:
                waiting[engine_id].append(str(job_id))
            else:
                queueing.send_job(str(job_id))
                sent += 1
        for engine_id, job_ids in waiting.items():
            for job in Job.objects.filter(id__in=admission.unknown(limited[engine_id], job_ids)):
                job.engine = limited[engine_id]
                admission.send_again(job)
                sent += 1
        if len(rows) < PAGE:
            break
        last_id, _, last_created = rows[-1]
        after = Q(created_at__gt=last_created) | Q(created_at=last_created, id__gt=last_id)
    return sent


def reap(job_id: str, n: int) -> bool:
    """A running job whose worker is gone: ended with the output it left in the log, or, when
    it left none, queued to run again. True when it was ended."""
    written = chunklog.read_all(job_id)
    if not written:
        if lifecycle.requeue_lost(job_id):
            transaction.on_commit(
                lambda: admission.send_again(Job.objects.select_related("engine").get(pk=job_id))
            )
        return False
    if lifecycle.end_lost(job_id, written, n):
        engine = Engine.objects.get(jobs__id=job_id)
        if engine.is_limited:  # its lease would run out anyway; the next job need not wait for it
            admission.release(engine, job_id, None)
    return True


def reap_if_dead(job_id: str) -> bool:
    """For a reader that waited on a running job and heard nothing: reap it now if its worker
    is gone, so a job never hangs for want of a sweeper. True when it was reaped."""
    job = Job.objects.filter(pk=job_id, status=Job.Status.RUNNING).only("started_at", "request").first()
    if job is None or job.started_at is None:
        return False
    if (timezone.now() - job.started_at).total_seconds() < _grace():
        return False
    if chunklog.alive([job_id])[0]:
        return False
    reap(job_id, job.request.get("n", 1))
    return True


def start_background_sweeper() -> threading.Thread:
    """A daemon thread in each worker process: sweeps at start-up (finding the jobs of a worker
    that died before this one started), then every SPOOL_SWEEP_EVERY_SECONDS."""

    def sweep_and_say() -> None:
        found = sweep()
        if any(found.values()):
            log.warning("sweeper: %s", found)

    return start_periodic("spool-sweeper", sweep_and_say, lambda: settings.SPOOL.worker.sweep_every_seconds)
