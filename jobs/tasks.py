"""Celery tasks: thin wrappers that take an id and call the runner."""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_ready

from jobs.sweeper import start_background_sweeper
from jobs.worker import runtime
from jobs.worker.runner import job_run


@shared_task(name="spool.run_job", ignore_result=True)
def run_job(job_id: str) -> None:
    job_run(job_id=job_id)


@worker_ready.connect
def _start_worker_runtime(**kwargs: object) -> None:
    from engine.offline.model import default_model

    # Built here, once: the first offline generation would otherwise build it on the event loop
    # and hold every other generation of this process meanwhile.
    default_model()
    runtime.loop()
    start_background_sweeper()
