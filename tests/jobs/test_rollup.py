"""The per-minute rollup of ended jobs (jobs/rollup.py), kept by a deferred trigger: each way a job
ends counts it once, in the minute it ended, under its outcome and code, with its tokens and its
time to first token in the right bucket; the backfill counts what ended before the trigger."""

from __future__ import annotations

import bisect
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from engine import registry
from engine.types import CONTENT, FINISH, USAGE
from jobs import rollup, services
from jobs.models import Engine, Job, JobMinute
from jobs.worker.runner import job_run
from tests.support import ScriptedEngine

# The trigger runs at commit: these tests commit (and Django empties the tables after each).
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def scripted_kind(monkeypatch, redis_clean):
    monkeypatch.setitem(registry.KINDS, "scripted", ScriptedEngine)


def engine(name: str = "scripted", script: list[dict] | None = None) -> Engine:
    return Engine.objects.create(name=name, kind="scripted", config={"script": script or []})


def queued_job(on: Engine) -> Job:
    owner = services.user_ensure(username="roll")
    return Job.objects.create(
        owner=owner, engine=on, request={"messages": [{"role": "user", "content": "hi"}]}
    )


def ended_job(
    on: Engine, *, status: str, ended: datetime, ttft_ms: float | None, code: str = "", **usage: int
) -> Job:
    """A job ended by one UPDATE, as the worker ends them, with the timings given."""
    created = ended - timedelta(seconds=3)
    job = queued_job(on)
    Job.objects.filter(pk=job.pk).update(
        status=status,
        created_at=created,
        first_chunk_at=None if ttft_ms is None else created + timedelta(milliseconds=ttft_ms),
        finished_at=ended,
        finish_reason=code or "stop",
        usage=usage or None,
    )
    return job


def bucket_of(ms: float) -> int:
    return bisect.bisect_right(rollup.BUCKETS_MS, ms) - 1


def minute_of(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def test_a_job_the_worker_ends_counts_in_its_minute_with_tokens_and_first_token_bucket():
    script = [
        {"type": CONTENT, "data": {"content": "Hel"}},
        {"type": FINISH, "data": {"finish_reason": "stop"}},
        {"type": USAGE, "data": {"input_tokens": 7, "output_tokens": 5}},
    ]
    job = queued_job(engine(script=script))
    job_run(job_id=str(job.pk))
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED

    row = JobMinute.objects.get()
    ttft = (job.first_chunk_at - job.created_at).total_seconds() * 1000
    assert (row.minute, row.engine_id, row.status, row.code) == (
        minute_of(job.finished_at),
        job.engine_id,
        "succeeded",
        "",
    )
    assert (row.jobs, row.ttft_jobs, row.input_tokens, row.output_tokens) == (1, 1, 7, 5)
    assert row.ttft_ms_sum == round(ttft)
    assert row.ttft_buckets[bucket_of(ttft)] == 1 and sum(row.ttft_buckets) == 1


def test_a_failed_job_counts_under_its_code():
    job = queued_job(engine(script=[{"raise": "upstream said 502"}]))
    job_run(job_id=str(job.pk))
    job.refresh_from_db()
    assert (job.status, job.finish_reason) == (Job.Status.FAILED, "upstream_error")

    row = JobMinute.objects.get()
    assert (row.status, row.code, row.jobs) == ("failed", "upstream_error", 1)
    assert (row.ttft_jobs, sum(row.ttft_buckets)) == (0, 0)  # no chunk came: no first token


def test_a_job_cancelled_while_queued_counts_as_cancelled():
    job = queued_job(engine())
    services.job_cancel(job.pk)

    row = JobMinute.objects.get()
    assert (row.status, row.code, row.jobs, row.ttft_jobs) == ("cancelled", "cancelled", 1, 0)


def test_jobs_ending_in_one_minute_on_one_engine_add_up_in_one_row():
    on, other = engine(), engine("other")
    at = timezone.now().replace(second=10)
    for ttft in (30, 320, 320):
        ended_job(on, status="succeeded", ended=at, ttft_ms=ttft, input_tokens=10, output_tokens=1)
    ended_job(other, status="failed", ended=at, ttft_ms=None, code="upstream_timeout")
    ended_job(on, status="succeeded", ended=at + timedelta(minutes=1), ttft_ms=70_000)

    row = JobMinute.objects.get(engine=on, minute=minute_of(at))
    assert (row.jobs, row.ttft_jobs, row.ttft_ms_sum, row.input_tokens) == (3, 3, 670, 30)
    assert row.ttft_buckets[bucket_of(30)] == 1 and row.ttft_buckets[bucket_of(320)] == 2
    later = JobMinute.objects.get(engine=on, minute=minute_of(at) + timedelta(minutes=1))
    assert later.ttft_buckets[-1] == 1  # past the last bound: the open last bucket
    assert JobMinute.objects.get(engine=other).code == "upstream_timeout"


def test_only_the_change_to_an_ending_status_counts():
    job = queued_job(engine())
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING)
    assert not JobMinute.objects.exists()
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED, finished_at=timezone.now())
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED)  # written again: no new end
    Job.objects.filter(pk=job.pk).update(usage={"input_tokens": 1})
    assert JobMinute.objects.get().jobs == 1


def test_the_backfill_counts_earlier_ends_in_batches_and_leaves_later_ones_to_the_trigger():
    on = engine()
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(rollup.DROP_SQL)  # as before the migration
    try:
        for minutes in range(7):
            ended_job(on, status="succeeded", ended=now - timedelta(minutes=minutes, seconds=1), ttft_ms=200)
        ended_job(
            on, status="failed", ended=now - timedelta(days=9), ttft_ms=None, code="x"
        )  # before `since`
        queued_job(on)  # not ended
    finally:
        rollup.install()
    ended_job(on, status="failed", ended=now + timedelta(seconds=1), ttft_ms=None, code="later")

    counted: list[int] = []
    done = rollup.backfill(since=now - timedelta(days=7), before=now, batch=3, progress=counted.append)

    # The row ended just now is the trigger's; the backfill's `before` leaves it alone.
    assert done == 7
    assert counted == sorted(counted) and len(counted) >= 3  # several batches, each reported
    assert sum(JobMinute.objects.filter(status="succeeded").values_list("jobs", flat=True)) == 7
    assert list(JobMinute.objects.filter(status="failed").values_list("code", "jobs")) == [("later", 1)]


def test_percentiles_read_from_buckets():
    buckets = [0] * len(rollup.BUCKETS_MS)
    assert rollup.percentile(buckets, 0.5) is None
    buckets[bucket_of(300)] = 10  # all in [300, 400)
    assert rollup.percentile(buckets, 0.5) == 350
    buckets[bucket_of(5000)] = 10  # half in [5000, 7500)
    assert rollup.percentile(buckets, 0.95) == 5000 + 2500 * 0.9
    buckets[-1] = 100  # past the last bound: its lower bound is all that is known
    assert rollup.percentile(buckets, 0.95) == rollup.BUCKETS_MS[-1]


def test_the_purge_deletes_the_minutes_older_than_the_retention_and_keeps_the_rest(spool_env):
    from django.core.management import call_command

    spool_env(SPOOL_ROLLUP_RETENTION_DAYS=7)
    on, now = engine(), timezone.now()
    for age in (8, 6):
        ended_job(on, status=Job.Status.SUCCEEDED, ended=now - timedelta(days=age), ttft_ms=40)
    assert JobMinute.objects.count() == 2
    call_command("spool_purge_rollup")
    kept = list(JobMinute.objects.values_list("minute", flat=True))
    assert kept == [(now - timedelta(days=6)).replace(second=0, microsecond=0)]
