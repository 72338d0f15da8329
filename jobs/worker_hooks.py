"""What a worker process does beside running tasks: Django's logging, the job id on its lines,
liveness, and metrics (connected to Celery's signals when config/celery.py imports this)."""

from __future__ import annotations

import logging.config
import threading
from datetime import datetime
from typing import Any

from celery.signals import setup_logging, task_postrun, task_prerun, worker_ready, worker_shutdown

RUN_JOB = "spool.run_job"


@setup_logging.connect
def _log_as_django_does(**_: Any) -> None:
    """One log format for web and worker: Django's LOGGING (text or JSON, with the job id),
    in place of Celery's own set-up, which a receiver of this signal turns off."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@worker_ready.connect
def _start_liveness_and_metrics(**_: Any) -> None:
    from django.conf import settings

    from engine import upstream
    from jobs import liveness, metrics

    upstream.on_retry(metrics.upstream_retry)
    liveness.start(settings.SPOOL_WORKER_HEARTBEAT_FILE, settings.SPOOL_WORKER_HEARTBEAT_SECONDS)
    metrics.reap_dead_processes()
    metrics.generations_running().set(0)  # a sample from the start, not only after a first job
    if settings.SPOOL_WORKER_METRICS_PORT:
        metrics.serve(settings.SPOOL_WORKER_METRICS_PORT)


@worker_shutdown.connect
def _stop_liveness(**_: Any) -> None:
    from django.conf import settings

    from jobs import liveness

    liveness.stop(settings.SPOOL_WORKER_HEARTBEAT_FILE)


# When each run_job task began, by task id, to tell this delivery's work from a redelivered
# job's earlier run (whose end must not be counted twice).
_began: dict[str, datetime] = {}
_began_lock = threading.Lock()


@task_prerun.connect
def _task_begins(task_id: str, task: Any, args: tuple = (), **_: Any) -> None:
    if task.name != RUN_JOB or not args:
        return
    from django.utils import timezone

    from jobs import metrics
    from jobs.logcontext import bind_job_id, open_scope

    # Every line this task logs in its own thread carries the job id. Work it hands to other
    # threads or an event loop enters jobs.logcontext.job_log_context(job_id) there itself.
    open_scope()
    bind_job_id(args[0])
    with _began_lock:
        _began[task_id] = timezone.now()
    metrics.generations_running().inc()


@task_postrun.connect
def _task_ends(task_id: str, task: Any, args: tuple = (), **_: Any) -> None:
    if task.name != RUN_JOB or not args:
        return
    from jobs import metrics
    from jobs.logcontext import close_scope

    close_scope()
    metrics.generations_running().dec()
    with _began_lock:
        began = _began.pop(task_id, None)
    if began is not None:
        _count_job(str(args[0]), began)


def _count_job(job_id: str, began: datetime) -> None:
    """Jobs started and ended, time to first token and duration, from the job's row as the
    runner left it: one small query per job, in the task's thread, after the job is over."""
    from jobs import metrics
    from jobs.models import Job

    try:
        row = (
            Job.objects.filter(pk=job_id)
            .values("status", "engine__name", "started_at", "first_chunk_at", "finished_at")
            .first()
        )
    except Exception:  # Postgres away: the job's own handling reports that; metrics go without
        metrics.backend_error("postgres")
        return
    if row is None or row["started_at"] is None or row["started_at"] < began:
        return  # this delivery did not run it (cancelled while queued, or run before)
    engine = row["engine__name"]
    metrics.job_started(engine=engine)
    if row["status"] in Job.TERMINAL and row["finished_at"] is not None:
        metrics.job_ended(
            engine=engine,
            status=row["status"],
            duration=metrics.seconds_between(row["started_at"], row["finished_at"]),
            ttft=metrics.seconds_between(row["started_at"], row["first_chunk_at"]),
        )
