"""Every path that ends a job keeps its end the same way (jobs/lifecycle.py): a generation that
succeeded or failed in the runner, a job cancelled while queued, a job whose worker was lost,
each on every face, with `store` on and off. One outcome each: exactly one terminal chunk in the
log and the archive, the end counted once in the metrics, a stored response for a Responses job
and a stored completion for any other face's when `store` is on, nothing stored when it is off.
Against real Postgres and Redis."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from prometheus_client import REGISTRY

from engine import registry
from engine.types import CONTENT, FINISH, USAGE, GenerationRequest
from jobs import chunklog, lifecycle, queueing, search, services, sweeper
from jobs.models import Engine, Job, StoredCompletion, StoredResponse
from jobs.redis_clients import sync_redis
from jobs.webhooks import delivery
from jobs.webhooks.events import EVENT_TYPES
from jobs.webhooks.models import WebhookDelivery, WebhookEndpoint
from jobs.worker.runner import job_run
from tests.support import ScriptedEngine, statements_on_django_connections

# The worker loop's own connections claim and end the jobs: the tests commit them.
pytestmark = pytest.mark.django_db(transaction=True)

SAID = {"type": CONTENT, "data": {"content": "Half"}, "choice": 0}
SCRIPTS = {
    "succeeded": [
        SAID,
        {"type": FINISH, "data": {"finish_reason": "stop"}, "choice": 0},
        {"type": USAGE, "data": {"input_tokens": 2, "output_tokens": 1}},
    ],  # noqa: E501
    "failed": [SAID, {"raise": "the upstream fell over"}],
}
FACES = ["openai", "semoss", "jobs", "completions", "responses"]


@pytest.fixture(autouse=True)
def scripted_kind(monkeypatch, redis_clean):
    monkeypatch.setitem(registry.KINDS, "scripted", ScriptedEngine)
    monkeypatch.setattr(queueing, "send_job", lambda job_id: None)


def queued_job(face: str, store: bool, script: list[dict]) -> Job:
    owner = services.user_ensure(username="lifecycle")
    engine = Engine.objects.create(
        name=f"scripted-{Engine.objects.count()}", kind="scripted", config={"script": script}
    )
    return services.job_create(
        owner=owner,
        engine=engine,
        request=GenerationRequest(messages=[{"role": "user", "content": "hi"}]),
        options={"store": store, "metadata": {"path": "lifecycle"}},
        face=face,
    )


def run(job: Job) -> None:
    job_run(job_id=str(job.pk))


def cancel_while_queued(job: Job) -> None:
    services.job_cancel(job.pk)


def lose_the_worker(job: Job) -> None:
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.RUNNING, started_at=timezone.now() - timedelta(minutes=5)
    )
    chunklog.append(str(job.pk), [SAID])
    sync_redis().delete(chunklog.alive_key(str(job.pk)))  # its heartbeat ran out
    assert sweeper.sweep()["ended"] == 1


PATHS = {
    "succeeded": ("succeeded", run, Job.Status.SUCCEEDED),
    "failed": ("failed", run, Job.Status.FAILED),
    "cancelled while queued": ("succeeded", cancel_while_queued, Job.Status.CANCELLED),
    "worker lost": ("succeeded", lose_the_worker, Job.Status.FAILED),
}


@pytest.mark.parametrize("store", [True, False], ids=["store", "no store"])
@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("path", list(PATHS))
def test_every_ending_path_keeps_the_job_the_same_way(path, face, store):
    script, end, status = PATHS[path]
    job = queued_job(face, store, SCRIPTS[script])
    counted = {"engine": job.engine.name, "status": status}
    ends_before = REGISTRY.get_sample_value("spool_jobs_ended_total", counted) or 0

    end(job)

    job.refresh_from_db()
    assert job.status == status
    assert REGISTRY.get_sample_value("spool_jobs_ended_total", counted) == ends_before + 1
    log = [json.loads(raw) for raw in sync_redis().lrange(chunklog.chunks_key(str(job.pk)), 0, -1)]
    terminal = [c for c in log if chunklog.is_terminal(c)]
    assert len(terminal) == 1 and log[-1] == terminal[0]
    assert job.chunks == log  # the archive is the log
    kept_response = StoredResponse.objects.filter(job=job).exists()
    kept_completion = StoredCompletion.objects.filter(job=job).exists()
    assert (kept_response, kept_completion) == (store and face == "responses", store and face != "responses")
    if kept_completion:
        stored = StoredCompletion.objects.get(job=job)
        assert (stored.status, stored.metadata) == (status, {"path": "lifecycle"})


def the_stored_row(model: type[StoredResponse | StoredCompletion], job: Job) -> dict:
    """Every column of the job's stored row, the search vector a trigger fills included."""
    return model.objects.filter(job=job).values(*[f.attname for f in model._meta.concrete_fields]).get()


@pytest.mark.parametrize("face", ["responses", "openai", "semoss"])
def test_a_stored_job_ended_on_the_loop_keeps_the_row_the_orm_path_keeps(face):
    """The runner ends a stored job whose owner has no webhook endpoint in one statement on its
    loop, the stored row built from the job it holds; the ORM path (the sweeper's, a cancel's)
    builds it from the job read back. Both rows are the same, column by column."""
    job = queued_job(face, True, SCRIPTS["succeeded"])
    model = StoredResponse if face == "responses" else StoredCompletion

    with statements_on_django_connections() as sql:
        run(job)
    assert sql == []  # no thread, no transaction on Django's connection
    on_the_loop = the_stored_row(model, job)

    model.objects.filter(job=job).delete()
    with transaction.atomic():
        lifecycle.ended(Job.objects.only("id", "face", "options").get(pk=job.pk), wants_events=False)
    assert on_the_loop == the_stored_row(model, job)
    if model is StoredCompletion:
        assert on_the_loop["search"]  # the trigger filled it on the raw insert too
        assert search.matching(StoredCompletion.objects.filter(job=job), "half").exists()


@pytest.mark.parametrize("face", ["responses", "openai"])
def test_a_stored_job_whose_owner_has_a_webhook_endpoint_is_ended_with_its_events_in_one_transaction(
    face, monkeypatch
):
    """Its events are ORM writes, in the end's own transaction on Django's connection: that end
    still keeps the stored row, with the events."""
    monkeypatch.setattr(delivery, "_enqueue", lambda *args, **kwargs: None)
    job = queued_job(face, True, SCRIPTS["succeeded"])
    WebhookEndpoint.objects.create(
        owner=job.owner, url="https://example.com/hook", event_types=EVENT_TYPES, secret_encrypted="x"
    )
    model = StoredResponse if face == "responses" else StoredCompletion

    with statements_on_django_connections() as sql:
        run(job)
    assert any("jobs_webhookdelivery" in statement for statement in sql)
    assert model.objects.filter(job=job).exists()
    assert WebhookDelivery.objects.filter(job=job).exists()
    assert Job.objects.get(pk=job.pk).status == Job.Status.SUCCEEDED
