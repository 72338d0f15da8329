"""The worker's pool (jobs/worker/pool.py), a job's task on the worker's event loop: its message
is acknowledged only after the job's end, a task that raises gives its slot back, the
concurrency bounds the jobs running at once, and a warm shutdown lets running jobs end; on the
Redis broker and on RabbitMQ."""

from __future__ import annotations

import time

import pytest
from celery import Celery

from tests.brokers import BROKERS, skipped_deliveries, spool_on
from tests.e2e.helpers import NO_EOT, Frontend

pytestmark = pytest.mark.e2e

CONCURRENCY = 2


@pytest.fixture(scope="module", params=BROKERS)
def pooled(request, django_db_setup, django_db_blocker, tmp_path_factory):
    """A Spool of its own whose worker carries CONCURRENCY jobs, on each broker; the Redis
    transport gives back a message unacknowledged for 2 s; INFO logs (deliveries, skips)."""
    with spool_on(
        request.param,
        django_db_blocker,
        tmp_path_factory.mktemp(f"pool-{request.param}-logs"),
        concurrency=CONCURRENCY,
        SPOOL_BROKER_VISIBILITY_TIMEOUT_SECONDS="2",
        SPOOL_BROKER_RESTORE_EVERY_SECONDS="1",
        # No sweeper gives a job back here: what runs a job again is its message alone.
        SPOOL_HEARTBEAT_TTL_SECONDS="600",
        SPOOL_LOG_LEVEL="INFO",
    ) as running:
        wait_ready(running, 1)
        yield running


def wait_ready(spool, starts: int) -> None:
    """Until the worker's `starts`-th start is ready. An acknowledgement made before then waits
    on RabbitMQ (with either pool) until the consumer's loop runs: not what is tested here."""
    log = spool.processes.logs / "worker.log"
    wait_for(lambda: log.read_text(errors="replace").count(" ready.") >= starts, "the worker is ready")


def status_of(job_id: str) -> str:
    from jobs.models import Job

    return Job.objects.values_list("status", flat=True).get(pk=job_id)


def wait_for(condition, what: str, bound: float = 60) -> None:
    deadline = time.monotonic() + bound
    while not condition():
        assert time.monotonic() < deadline, f"not within {bound} s: {what}"
        time.sleep(0.05)


def ended(job_id: str) -> bool:
    return status_of(job_id) not in ("queued", "running")


def test_a_jobs_message_is_acknowledged_after_its_end_and_not_before(pooled, pg):
    """A job that ended is never delivered again; one still running when its worker dies is
    (and its claim then skips it: it is the dead worker's, for the sweeper)."""
    client = Frontend(pooled, pooled.alice)
    done = client.submit(pooled.engine_id, "short", {"max_completion_tokens": 10, **NO_EOT})
    wait_for(lambda: ended(done), "the short job ended")
    assert status_of(done) == "succeeded"
    cut = client.submit(pooled.engine_id, "a long tale", {"max_completion_tokens": 5000, **NO_EOT})
    wait_for(lambda: status_of(cut) == "running", "the long job started")
    starts = (pooled.processes.logs / "worker.log").read_text(errors="replace").count(" ready.")
    pooled.processes.kill_worker()
    pooled.processes.start_worker()
    wait_ready(pooled, starts + 1)
    wait_for(lambda: skipped_deliveries(pooled, cut) >= 1, "the killed job's message came back")
    assert skipped_deliveries(pooled, done) == 0


def test_a_task_that_raises_gives_its_slot_back(pooled, pg):
    """Tasks whose job id Postgres refuses fail, each once, on every slot; a job sent after them
    still runs."""
    env = pooled.processes.env
    app = Celery(broker=env.get("CELERY_BROKER_URL") or env["REDIS_URL"])
    try:
        for n in range(CONCURRENCY + 1):
            app.send_task("spool.run_job", args=[f"not-a-job-{n}"], queue=env["SPOOL_CELERY_QUEUE"])
    finally:
        app.close()
    client = Frontend(pooled, pooled.alice)
    job_id = client.submit(pooled.engine_id, "after the failures", {"max_completion_tokens": 10, **NO_EOT})
    wait_for(lambda: ended(job_id), "the job after the failing tasks ended")
    assert status_of(job_id) == "succeeded"
    log = (pooled.processes.logs / "worker.log").read_text(errors="replace")
    for n in range(CONCURRENCY + 1):
        assert f'invalid input syntax for type uuid: "not-a-job-{n}"' in log


def test_no_more_jobs_run_at_once_than_the_concurrency(pooled, pg):
    from jobs.models import Job

    client = Frontend(pooled, pooled.alice)
    ids = [
        client.submit(pooled.engine_id, f"one of many {n}", {"max_completion_tokens": 150, **NO_EOT})
        for n in range(CONCURRENCY * 3)
    ]
    most = 0
    while not all(ended(job_id) for job_id in ids):
        most = max(most, Job.objects.filter(pk__in=ids, status="running").count())
        time.sleep(0.02)
    assert most == CONCURRENCY
    # Celery's own handlers of each task (its Django fixup's among them) ran on the loop unharmed.
    assert "Signal handler" not in (pooled.processes.logs / "worker.log").read_text(errors="replace")
    assert set(Job.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"succeeded"}


def test_a_warm_shutdown_lets_the_running_jobs_end(pooled, pg):
    from jobs.models import Job

    client = Frontend(pooled, pooled.alice)
    ids = [
        client.submit(pooled.engine_id, f"ends in time {n}", {"max_completion_tokens": 300, **NO_EOT})
        for n in range(CONCURRENCY)
    ]
    wait_for(lambda: all(status_of(job_id) == "running" for job_id in ids), "both jobs started")
    worker = pooled.processes.worker
    pooled.processes.stop_worker()  # SIGTERM; SIGKILL only past 15 s
    try:
        assert worker is not None and worker.returncode == 0  # it ended by itself
        for job in Job.objects.filter(pk__in=ids):
            assert (job.status, job.usage["output_tokens"]) == ("succeeded", 300)
    finally:
        starts = (pooled.processes.logs / "worker.log").read_text(errors="replace").count(" ready.")
        pooled.processes.start_worker()
        wait_ready(pooled, starts + 1)
