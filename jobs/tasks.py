"""Celery tasks: thin wrappers that take an id and call the runner."""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_ready

from jobs import queueing
from jobs.batches import runner as batches
from jobs.batches.tick import start_background_batch_tick
from jobs.models import Engine
from jobs.retention import start_background_retention
from jobs.scheduling import admission
from jobs.sweeper import start_background_sweeper
from jobs.webhooks import delivery
from jobs.worker import runtime
from jobs.worker.runner import job_run


@shared_task(name=queueing.RUN_JOB, ignore_result=True)
def run_job(job_id: str) -> None:
    job_run(job_id=job_id)


@shared_task(name=queueing.ADMIT, ignore_result=True)
def admit(engine_id: str) -> None:
    """A limited engine's delayed admission: its rate limit or an upstream's hold allows again."""
    engine = Engine.objects.filter(pk=engine_id).first()
    if engine is not None and engine.is_limited:
        admission.admit(engine)


# Retries are the delivery's own (jobs.webhooks.delivery: backoff, Retry-After, a day), each a
# new task message, so none waits inside a worker; acks_late keeps the message of an attempt
# whose worker died, and the attempt's row claim makes its second delivery harmless.
@shared_task(name=queueing.DELIVER_WEBHOOK, ignore_result=True, acks_late=True)
def deliver_webhook(delivery_id: str, attempt: int) -> None:
    delivery.attempt(delivery_id=delivery_id, number=attempt)


# acks_late: a step whose worker died is delivered again; its token and its transactions make
# running it twice harmless.
@shared_task(name=queueing.ADVANCE_BATCH, ignore_result=True, acks_late=True)
def advance_batch(batch_id: str, token: str) -> None:
    delay = batches.advance(batch_id, token)
    if delay is not None:
        queueing.send_batch(batch_id, token, countdown=delay)


@worker_ready.connect
def _start_worker_runtime(**kwargs: object) -> None:
    from engine.offline.model import default_model

    # Built here, once: the first offline generation would otherwise build it on the event loop
    # and hold every other generation of this process meanwhile.
    default_model()
    runtime.loop()
    start_background_sweeper()
    start_background_retention()
    start_background_batch_tick()
