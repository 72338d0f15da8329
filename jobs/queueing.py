"""Sending work to the workers, with the tasks looked up by name in Celery's registry (filled
from jobs/tasks.py when the app is finalized): what enqueues (a job's creation, the sweeper, a
job's webhook events) does not import the task module, which imports the runner and the webhook
delivery that enqueue. That import was a cycle of seven modules, held open by imports inside
functions. Not send_task: the tracing instrumentation follows only a registered task's publish."""

from __future__ import annotations

from celery import current_app
from django.conf import settings

RUN_JOB = "spool.run_job"
DELIVER_WEBHOOK = "spool.deliver_webhook"
ADMIT = "spool.admit"
ADVANCE_BATCH = "spool.advance_batch"


def send_job(job_id: str) -> None:
    current_app.tasks[RUN_JOB].delay(job_id)


def send_batch_job(job_id: str) -> None:
    """A job of class batch on an engine without limits: to the queue of its own
    (SPOOL_BATCH_QUEUE), which workers take from beside the jobs' queue (config/settings.py says
    in what order)."""
    current_app.tasks[RUN_JOB].apply_async((job_id,), queue=settings.SPOOL.broker.batch_queue)


def send_admission(engine_id: str, countdown: float) -> None:
    """An admission on the engine once a rate limit or an upstream's hold allows one again."""
    current_app.tasks[ADMIT].apply_async((engine_id,), countdown=countdown)


def send_webhook(delivery_id: str, attempt: int, countdown: float = 0.0) -> None:
    current_app.tasks[DELIVER_WEBHOOK].apply_async((delivery_id, attempt), countdown=countdown)


def send_batch(batch_id: str, token: str, countdown: float = 0.0) -> None:
    """The next step of a batch (jobs.batches.runner), carrying the token of its chain."""
    current_app.tasks[ADVANCE_BATCH].apply_async((batch_id, token), countdown=countdown)
