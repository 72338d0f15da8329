"""The sweeper ends jobs whose worker died and re-runs those that had written nothing."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from engine.types import GenerationRequest
from jobs import chunklog, queueing, services, sweeper
from jobs.models import Job
from jobs.redis_clients import sync_redis

pytestmark = pytest.mark.django_db


@pytest.fixture
def enqueued(monkeypatch, redis_clean):
    sent: list[str] = []
    monkeypatch.setattr(queueing, "send_job", sent.append)
    return sent


def running_job(*, minutes_ago: float = 5) -> Job:
    owner = services.user_ensure(username="sweep")
    engine = services.engine_ensure_offline()
    job = services.job_create(
        owner=owner,
        engine=engine,
        request=GenerationRequest(messages=[{"role": "user", "content": "x"}]),
        options={},
        face="test",
    )
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.RUNNING, started_at=timezone.now() - timedelta(minutes=minutes_ago)
    )
    return job


def test_a_job_whose_worker_died_mid_stream_ends_once_with_its_partial_output(enqueued):
    job = running_job()
    chunklog.append(str(job.pk), [{"type": "content", "data": {"content": "half a sen"}}])
    sync_redis().delete(chunklog.alive_key(str(job.pk)))  # the heartbeat ran out

    assert sweeper.sweep() == {"ended": 1, "retried": 0, "requeued": 0, "webhooks_resent": 0}
    # Ended exactly once.
    assert sweeper.sweep() == {"ended": 0, "retried": 0, "requeued": 0, "webhooks_resent": 0}

    log = [json.loads(raw) for raw in sync_redis().lrange(chunklog.chunks_key(str(job.pk)), 0, -1)]
    assert [c["type"] for c in log] == ["content", "usage", "error"]
    assert log[-1]["data"]["code"] == "worker_lost"
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and job.result["choices"][0]["content"] == "half a sen"
    assert job.chunks == log


def test_a_job_whose_worker_died_before_any_output_runs_again(enqueued, django_capture_on_commit_callbacks):
    job = running_job()
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeper.sweep()["retried"] == 1
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED and job.started_at is None
    assert enqueued == [str(job.pk)]


def test_a_live_worker_or_a_fresh_job_is_left_alone(enqueued):
    alive = running_job()
    chunklog.append(str(alive.pk), [])  # a heartbeat
    fresh = running_job(minutes_ago=0)
    assert sweeper.sweep() == {"ended": 0, "retried": 0, "requeued": 0, "webhooks_resent": 0}
    assert {j.status for j in Job.objects.filter(pk__in=[alive.pk, fresh.pk])} == {Job.Status.RUNNING}


def test_a_queued_job_that_waited_too_long_is_sent_again(enqueued):
    job = running_job()
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.QUEUED, created_at=timezone.now() - timedelta(hours=1)
    )
    assert sweeper.sweep()["requeued"] == 1
    assert enqueued == [str(job.pk)]
