"""Retention and erasure against real Postgres and Redis: what the purge deletes and keeps, in
batches; webhook deliveries; one purge at a time; the erasure of one user and its command."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from engine import registry
from engine.types import GenerationRequest
from jobs import chunklog, erasure, retention, rollup, services
from jobs.models import ApiKey, Engine, Job, JobMinute, Room, RoomMessage, StoredCompletion, StoredResponse
from jobs.redis_clients import sync_redis
from jobs.webhooks import endpoints
from jobs.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from jobs.worker.runner import job_run
from tests.support import ScriptedEngine

# The worker loop's own connections claim and end the jobs: the tests commit them.
pytestmark = pytest.mark.django_db(transaction=True)
OLD = timedelta(days=31)


@pytest.fixture(autouse=True)
def setup(monkeypatch, redis_clean, spool_env):
    monkeypatch.setitem(registry.KINDS, "scripted", ScriptedEngine)
    spool_env(
        SPOOL_WEBHOOK_ALLOWED_NETWORKS=["127.0.0.0/8"],
        SPOOL_JOB_RETENTION_DAYS=30,
        SPOOL_WEBHOOK_DELIVERY_RETENTION_DAYS=30,
    )


def scripted() -> Engine:
    return Engine.objects.get_or_create(
        name="scripted",
        kind="scripted",
        defaults={
            "config": {
                "script": [
                    {"type": "content", "data": {"content": "hi"}},
                    {"type": "finish", "data": {"finish_reason": "stop"}},
                ]
            }
        },
    )[0]


def queued_job(owner: Any, *, face: str = "jobs", store: bool = False, **kw: Any) -> Job:
    return services.job_create(
        owner=owner,
        engine=scripted(),
        request=GenerationRequest(messages=[{"role": "user", "content": "hi"}]),
        options={"store": store},
        face=face,
        **kw,
    )


def ended_job(owner: Any, *, age: timedelta = OLD, **kw: Any) -> Job:
    """A job run to its end (archived log in the row, live log in Redis), then made `age` old."""
    job = queued_job(owner, **kw)
    job_run(job_id=str(job.pk))
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - age)
    return job


def redis_keys(job: Job) -> int:
    return sum(sync_redis().exists(key) for key in chunklog.job_keys(str(job.pk)))


def exists(job: Job) -> bool:
    return Job.objects.filter(pk=job.pk).exists()


# ---- the purge -------------------------------------------------------------------------------


def test_an_ended_job_past_its_retention_goes_with_its_logs_and_a_recent_one_stays():
    owner = services.user_ensure(username="kept")
    old, recent = ended_job(owner), ended_job(owner, age=timedelta(days=29))
    assert redis_keys(old) > 0 and Job.objects.get(pk=old.pk).chunks

    assert retention.purge()["jobs"] == 1
    assert not exists(old) and redis_keys(old) == 0
    assert exists(recent) and redis_keys(recent) > 0


def test_redis_is_not_asked_about_a_job_whose_log_expired_long_ago(settings):
    owner = services.user_ensure(username="expired")
    job = ended_job(owner)
    ttl = settings.SPOOL.redis.chunk_log_ttl_seconds
    Job.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(seconds=ttl + 120))
    assert retention.purge()["jobs"] == 1 and not exists(job)
    # Left to expire: in production they were gone an hour after the job ended.
    assert redis_keys(job) > 0


def test_a_job_behind_a_stored_completion_or_response_stays_until_that_goes():
    owner = services.user_ensure(username="stores")
    completion = ended_job(owner, face="openai", store=True)
    response = ended_job(owner, face="responses", store=True)
    StoredResponse.objects.filter(job=response).update(created_at=timezone.now() - timedelta(days=5))
    assert retention.purge()["jobs"] == 0
    assert exists(completion) and exists(response)

    # The owner's delete of the completion frees its job; the response's own retention, its job.
    StoredCompletion.objects.filter(job=completion).delete()
    StoredResponse.objects.filter(job=response).update(created_at=timezone.now() - OLD)
    done = retention.purge()
    assert (done["stored responses"], done["jobs"]) == (1, 2)
    assert not exists(completion) and not exists(response)


def test_an_unfinished_job_is_not_purged_however_old():
    owner = services.user_ensure(username="slow")
    job = queued_job(owner)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, created_at=timezone.now() - OLD)
    assert retention.purge()["jobs"] == 0 and exists(job)


def test_links_to_a_purged_job_are_dropped_and_what_holds_them_stays():
    owner = services.user_ensure(username="linked")
    room = Room.objects.create(owner=owner)
    job = ended_job(owner, room=room)
    message = RoomMessage.objects.create(room=room, job=job, role="assistant", content="hi")
    retention.purge()
    assert not exists(job)
    message.refresh_from_db()
    assert message.job_id is None and message.content == "hi"


def test_a_backlog_goes_in_batches_each_its_own_delete():
    owner = services.user_ensure(username="backlog")
    jobs = [ended_job(owner) for _ in range(5)]
    kept = ended_job(owner, face="openai", store=True)  # in the middle of the walk, passed over
    jobs += [ended_job(owner) for _ in range(2)]
    batches: list[tuple[str, int, float]] = []
    assert retention.purge(batch=2, observe=lambda *seen: batches.append(seen))["jobs"] == 7
    assert [rows for what, rows, _ in batches if what == "jobs"] == [2, 2, 1, 2]
    assert not any(exists(job) for job in jobs) and exists(kept)


def test_zero_days_keeps_everything_for_ever(spool_env):
    spool_env(
        SPOOL_JOB_RETENTION_DAYS=0,
        SPOOL_WEBHOOK_DELIVERY_RETENTION_DAYS=0,
        SPOOL_RESPONSES_RETENTION_DAYS=0,
        SPOOL_ROLLUP_RETENTION_DAYS=0,
    )
    owner = services.user_ensure(username="forever")
    ancient = timezone.now() - timedelta(days=3650)
    job = ended_job(owner, age=timedelta(days=3650))
    response = ended_job(owner, face="responses", store=True)
    StoredResponse.objects.filter(job=response).update(created_at=ancient)
    JobMinute.objects.create(
        minute=ancient, engine=scripted(), status="succeeded", code="", jobs=1, ttft_jobs=0, ttft_ms_sum=0,
        ttft_buckets=[0] * len(rollup.BUCKETS_MS), input_tokens=0, output_tokens=0,
    )  # fmt: skip
    assert retention.purge() == dict.fromkeys(
        ["stored responses", "jobs", "webhook deliveries", "rollup rows", "files", "batches"], 0
    )
    assert exists(job) and exists(response) and JobMinute.objects.filter(minute=ancient).exists()


def delivery(endpoint: WebhookEndpoint, *, age: timedelta, status: str) -> WebhookDelivery:
    made = WebhookDelivery.objects.create(
        endpoint=endpoint,
        event_id=f"evt_{WebhookDelivery.objects.count()}",
        event_type="job.succeeded",
        payload={},
        status=status,
        retrying_since=timezone.now(),
    )
    WebhookAttempt.objects.create(delivery=made, number=1, started_at=timezone.now(), status_code=500)
    WebhookDelivery.objects.filter(pk=made.pk).update(created_at=timezone.now() - age)
    return made


def test_finished_deliveries_past_their_retention_go_with_their_attempts():
    owner = services.user_ensure(username="hooks")
    hook, _ = endpoints.endpoint_create(
        owner=owner, url="http://127.0.0.1:9/h", event_types=["job.succeeded"]
    )
    old_done = delivery(hook, age=OLD, status="delivered")
    old_failed = delivery(hook, age=OLD, status="failed")
    still_trying = delivery(hook, age=OLD, status="pending")
    recent = delivery(hook, age=timedelta(days=1), status="delivered")

    assert retention.purge()["webhook deliveries"] == 2
    left = set(WebhookDelivery.objects.values_list("id", flat=True))
    assert left == {still_trying.pk, recent.pk}
    assert not WebhookAttempt.objects.filter(delivery_id__in=[old_done.pk, old_failed.pk]).exists()
    assert WebhookEndpoint.objects.filter(pk=hook.pk).exists()


def test_only_one_process_purges_at_a_time():
    owner = services.user_ensure(username="one-at-a-time")
    job = ended_job(owner)
    db = connection.settings_dict
    with psycopg.connect(
        dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"] or 5432, autocommit=True
    ) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [retention.LOCK_KEY])
        assert retention.purge_if_first() is None
        assert exists(job)
        other.execute("SELECT pg_advisory_unlock(%s)", [retention.LOCK_KEY])
    assert retention.purge_if_first() == {
        "stored responses": 0,
        "jobs": 1,
        "webhook deliveries": 0,
        "rollup rows": 0,
        "files": 0,
        "batches": 0,
    }


def test_no_background_purge_when_its_period_is_zero(spool_env):
    spool_env(SPOOL_RETENTION_EVERY_SECONDS=0)
    assert retention.start_background_retention() is None


# ---- erasure ---------------------------------------------------------------------------------


def everything_of(username: str) -> dict[str, Any]:
    user = services.user_ensure(username=username)
    services.key_create(owner=user)
    room = Room.objects.create(owner=user)
    job = ended_job(user, age=timedelta(0), room=room)
    RoomMessage.objects.create(room=room, job=job, role="user", content="secret words")
    hook, _ = endpoints.endpoint_create(owner=user, url="http://127.0.0.1:9/h", event_types=["job.succeeded"])
    delivery(hook, age=timedelta(0), status="delivered")
    return {
        "user": user,
        "job": job,
        "completion": ended_job(user, age=timedelta(0), face="openai", store=True),
        "response": ended_job(user, age=timedelta(0), face="responses", store=True),
    }


def test_erasure_deletes_everything_of_one_user_and_nothing_of_another():
    gone, kept = everything_of("leaving"), everything_of("staying")
    before = erasure.counts(kept["user"])
    assert (
        erasure.counts(gone["user"])
        == before
        == {
            "api keys": 1,
            "webhook endpoints": 1,
            "webhook deliveries": 3,  # one made here, and the two jobs' ends after the endpoint
            "stored completions": 1,
            "stored responses": 1,
            "jobs": 3,
            "rooms": 1,
            "room messages": 2,  # one made here, and the answer the runner adds
            "batches": 0,  # tests/jobs/test_batch_retention.py erases these
            "files": 0,
        }
    )

    done = erasure.erase(gone["user"], wait=0)
    assert done == {
        "api keys": 1,
        "jobs still running": 0,
        "webhook deliveries": 3,
        "webhook endpoints": 1,
        "stored completions": 1,
        "stored responses": 1,
        "jobs": 3,
        "rooms": 1,
        "batches": 0,
        "files": 0,
        "user": 1,
    }
    assert not type(gone["user"]).objects.filter(username="leaving").exists()
    for job in (gone["job"], gone["completion"], gone["response"]):
        assert not exists(job) and redis_keys(job) == 0
    assert erasure.counts(kept["user"]) == before
    assert all(redis_keys(kept[what]) > 0 for what in ("job", "completion", "response"))


def test_erasure_asks_running_jobs_to_stop_and_waits_for_them():
    user = services.user_ensure(username="busy")
    job = queued_job(user)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING)
    waited: list[float] = []

    def worker_stops(seconds: float) -> None:  # the worker sees the cancel flag and ends the job
        assert sync_redis().exists(chunklog.cancel_key(str(job.pk)))
        waited.append(seconds)
        Job.objects.filter(pk=job.pk).update(status=Job.Status.CANCELLED)

    assert erasure.erase(user, sleep=worker_stops)["jobs still running"] == 0
    assert len(waited) == 1 and not exists(job) and redis_keys(job) == 0


def test_the_erase_command_counts_on_a_dry_run_and_erases_only_when_told():
    gone = everything_of("cmd-leaving")
    out = io.StringIO()
    call_command("spool_erase_user", "cmd-leaving", "--dry-run", stdout=out)
    assert "3 jobs" in out.getvalue() and "1 stored completions" in out.getvalue()
    assert "Nothing deleted" in out.getvalue() and exists(gone["job"])

    with pytest.raises(CommandError, match="--yes"):
        call_command("spool_erase_user", "cmd-leaving")
    assert exists(gone["job"])

    out = io.StringIO()
    call_command("spool_erase_user", "cmd-leaving", "--yes", stdout=out)
    assert "3 jobs deleted" in out.getvalue() and "Erased 'cmd-leaving'" in out.getvalue()
    assert not exists(gone["job"]) and not ApiKey.objects.filter(owner__username="cmd-leaving").exists()

    with pytest.raises(CommandError, match="no user"):
        call_command("spool_erase_user", "cmd-leaving", "--dry-run")


def test_the_purge_command_says_what_it_deleted():
    owner = services.user_ensure(username="cmd-purge")
    ended_job(owner)
    out = io.StringIO()
    call_command("spool_purge", stdout=out)
    assert "1 jobs deleted" in out.getvalue() and "longest DELETE" in out.getvalue()
