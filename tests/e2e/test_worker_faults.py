"""A worker killed with SIGKILL: its jobs end (or run again) within a bounded time, once; with
Redis and with RabbitMQ as the broker."""

from __future__ import annotations

import time

import pytest

from tests.brokers import BROKERS, figures_name, spool_on
from tests.e2e.helpers import NO_EOT, Frontend, messages_of, record_figures, text_of

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=BROKERS)
def fragile(request, django_db_setup, django_db_blocker, tmp_path_factory):
    """A Spool of its own (its worker gets killed), with a short heartbeat so the test is quick;
    on each broker (tests/brokers.py)."""
    with spool_on(
        request.param,
        django_db_blocker,
        tmp_path_factory.mktemp(f"fragile-{request.param}-logs"),
        SPOOL_HEARTBEAT_TTL_SECONDS="2",
        SPOOL_SWEEP_EVERY_SECONDS="0.5",
        SPOOL_REQUEUE_AFTER_SECONDS="3",
    ) as running:
        yield running


def test_a_job_whose_worker_is_killed_mid_stream_ends_once_with_an_error(fragile, pg):
    from jobs.models import Job

    client = Frontend(fragile, fragile.alice)
    job_id = client.submit(fragile.engine_id, "a long tale", {"max_completion_tokens": 5000, **NO_EOT})
    seen = []
    while len(text_of(seen)) < 30:
        seen += client.post("/engine/pixelJobStreaming", jobId=job_id)["message"]
    fragile.processes.kill_worker()
    killed_at = time.monotonic()

    # Nobody sweeps (the only worker is dead): the waiting reader itself ends the job.
    rest = client.stream(job_id, timeout=60)
    ended_after = time.monotonic() - killed_at
    messages = seen + messages_of(rest)
    finishes = [m for m in messages if "finish_reason" in m["data"]]
    assert finishes == [messages[-1]] and messages[-1]["data"]["finish_reason"] == "error"
    assert "stopped before it finished" in messages[-1]["data"]["error"]
    assert rest[-1]["status"] == "Error"
    assert ended_after < 30  # heartbeat 2 s + grace: bounded, not a hang

    job = Job.objects.get(pk=job_id)
    assert job.status == Job.Status.FAILED and job.finish_reason == "worker_lost"
    assert job.result["choices"][0]["content"] == text_of(messages)
    record_figures(
        fragile,
        figures_name(fragile, "worker-killed"),
        heartbeat_ttl_s=2,
        seconds_from_kill_to_end=round(ended_after, 2),
        terminal_chunks=len(finishes),
    )

    fragile.processes.start_worker()  # leave the module's Spool with a worker


def test_jobs_queued_while_the_worker_is_dead_run_after_it_restarts(fragile, pg):
    from jobs.models import Job

    client = Frontend(fragile, fragile.alice)
    fragile.processes.kill_worker()
    ids = [
        client.submit(fragile.engine_id, "wait for me", {"max_completion_tokens": 5, **NO_EOT})
        for _ in range(3)
    ]
    time.sleep(1)
    assert set(Job.objects.filter(pk__in=ids).values_list("status", flat=True)) == {Job.Status.QUEUED}

    fragile.processes.start_worker()
    for job_id in ids:
        assert client.stream(job_id, timeout=60)[-1]["status"] == "ProgressComplete"
    assert Job.objects.filter(pk__in=ids, status=Job.Status.SUCCEEDED).count() == 3
