"""Guard of what jobs/worker/pool.py reads of Celery (pyproject.toml bounds it): the trace's first
argument names the task, and the threads pool runs what is not a job. A job's task must run on
the worker loop's thread inside a greenback portal (so jobs.worker.runtime.wait awaits the job
in place); were Celery to pass its arguments otherwise, every job would silently go back to a
thread. An in-process worker on the test Redis; the end-to-end behaviour (acks, shutdown, both
brokers) is tests/e2e/test_worker_pool.py."""

from __future__ import annotations

import threading
import uuid

import greenback
from celery import Celery
from celery.contrib.testing.worker import start_worker
from django.conf import settings

from jobs.queueing import RUN_JOB


def test_a_jobs_task_runs_on_the_loop_in_a_portal_and_any_other_on_a_thread():
    app = Celery("pool-guard", broker=settings.SPOOL.broker.url, set_as_current=False)
    app.conf.update(
        task_default_queue=f"pool-guard-{uuid.uuid4().hex[:8]}",
        task_ignore_result=True,
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        worker_enable_remote_control=False,
    )
    seen: dict[str, tuple[str, bool]] = {}
    done = threading.Semaphore(0)

    def note(name: str) -> None:
        seen[name] = (threading.current_thread().name, greenback.has_portal())
        done.release()

    # Spool's own task of that name joins every app (a shared task): the probe takes its place.
    app.finalize()
    app.tasks.pop(RUN_JOB, None)

    @app.task(name=RUN_JOB)
    def job(job_id: str) -> None:
        note(job_id)

    @app.task(name="pool-guard.other")
    def other(name: str) -> None:
        note(name)

    with start_worker(app, pool="jobs.worker.pool:TaskPool", concurrency=2, perform_ping_check=False):
        job.delay("a job")
        other.delay("another task")
        assert done.acquire(timeout=60) and done.acquire(timeout=60)
    assert seen["a job"] == ("spool-loop", True)
    assert seen["another task"][0] != "spool-loop" and seen["another task"][1] is False
