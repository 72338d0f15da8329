"""What a worker process does beside running tasks: Django's logging, the job id on its lines,
liveness, and metrics (connected to Celery's signals when config/celery.py imports this)."""

from __future__ import annotations

import logging.config
from typing import Any

from celery.signals import (
    setup_logging,
    task_postrun,
    task_prerun,
    worker_init,
    worker_ready,
    worker_shutdown,
)

from jobs.queueing import RUN_JOB


@setup_logging.connect
def _log_as_django_does(**_: Any) -> None:
    """One log format for web and worker: Django's LOGGING (text or JSON, with the job id),
    in place of Celery's own set-up, which a receiver of this signal turns off."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@worker_init.connect
def _start_tracing(**_: Any) -> None:
    """Before the first task: the Celery instrumentation reads each message's trace context."""
    from jobs import tracing

    tracing.setup("spool-worker")


@worker_ready.connect
def _start_liveness_and_metrics(**_: Any) -> None:
    from django.conf import settings

    from engine import upstream
    from jobs import liveness, metrics
    from jobs.scheduling import admission

    upstream.on_retry(admission.upstream_retried)
    liveness.start(settings.SPOOL.worker.heartbeat_file, settings.SPOOL.worker.heartbeat_seconds)
    metrics.reap_dead_processes()
    metrics.generations_running().set(0)  # a sample from the start, not only after a first job
    if settings.SPOOL.worker.metrics_port:
        metrics.serve(settings.SPOOL.worker.metrics_port)


@worker_ready.connect
def _freeze_startup_objects(**_: Any) -> None:
    """Once the worker has loaded everything it runs jobs with (config/gctune.py)."""
    from django.conf import settings

    from config import gctune

    gctune.freeze_startup(settings.SPOOL.site.gc_freeze)


@worker_shutdown.connect
def _stop_liveness(**_: Any) -> None:
    from django.conf import settings

    from jobs import liveness, tracing

    liveness.stop(settings.SPOOL.worker.heartbeat_file)
    tracing.flush()


@task_prerun.connect
def _task_begins(task_id: str, task: Any, args: tuple = (), **_: Any) -> None:
    if task.name != RUN_JOB or not args:
        return
    from jobs import metrics
    from jobs.logcontext import bind_job_id, open_scope

    # Every line this task logs in its own thread carries the job id. Work it hands to other
    # threads or an event loop enters jobs.logcontext.job_log_context(job_id) there itself.
    open_scope()
    bind_job_id(args[0])
    metrics.generations_running().inc()


@task_postrun.connect
def _task_ends(task_id: str, task: Any, args: tuple = (), **_: Any) -> None:
    # Jobs started and ended are counted by the runner, which knows whether this delivery ran
    # the job and how it ended, without reading the row back.
    if task.name != RUN_JOB or not args:
        return
    from jobs import metrics
    from jobs.logcontext import close_scope

    close_scope()
    metrics.generations_running().dec()
