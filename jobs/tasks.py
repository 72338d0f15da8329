"""Celery tasks: thin wrappers that take an id and call the runner."""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_ready

from jobs.runner import job_run
from jobs.sweeper import start_background_sweeper


@shared_task(name="spool.run_job", ignore_result=True)
def run_job(job_id: str) -> None:
    job_run(job_id=job_id)


@worker_ready.connect
def _start_sweeper(**kwargs: object) -> None:
    start_background_sweeper()
