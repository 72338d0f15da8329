"""Stored responses: kept by the runner when a response's job ends, purged after the retention
setting (the command), and listed in the dashboard with the metadata filter."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

from engine import registry
from engine.types import CONTENT, FINISH, USAGE, GenerationRequest
from jobs import responses, services
from jobs.models import Engine, Job, StoredCompletion, StoredResponse
from jobs.worker.runner import job_run
from tests.support import ScriptedEngine, statements_on_django_connections

# The worker loop's own connections claim and end the jobs: the tests commit them.
pytestmark = pytest.mark.django_db(transaction=True)

SCRIPT = [
    {"type": CONTENT, "data": {"content": "He had "}, "choice": 0},
    {"type": CONTENT, "data": {"content": "three daughters."}, "choice": 0},
    {"type": USAGE, "data": {"input_tokens": 5, "output_tokens": 4}},
    {"type": FINISH, "data": {"finish_reason": "stop"}, "choice": 0},
]


@pytest.fixture(autouse=True)
def scripted_kind(monkeypatch, redis_clean):
    monkeypatch.setitem(registry.KINDS, "scripted", ScriptedEngine)
    cache.clear()  # the admin's filter choices are cached for a minute


def run_response(options: dict[str, Any], script: list[dict] = SCRIPT) -> Job:
    job = make_response(options, script)
    job_run(job_id=str(job.pk))
    return Job.objects.get(pk=job.pk)


def make_response(options: dict[str, Any], script: list[dict] = SCRIPT) -> Job:
    user = services.user_ensure(username="ann")
    engine = Engine.objects.create(
        name=f"scripted-{uuid.uuid4().hex[:6]}", kind="scripted", config={"script": script}
    )
    job = services.job_create(
        owner=user,
        engine=engine,
        request=GenerationRequest(messages=[{"role": "user", "content": "hi"}]),
        options=options,
        face=responses.FACE,
    )
    return job


def test_a_stored_response_is_kept_as_a_response_not_a_completion():
    job = run_response({"store": True, "metadata": {"team": "search"}})
    stored = StoredResponse.objects.get(job=job)
    assert stored.id == responses.response_id(job.pk) and stored.status == "completed"
    assert stored.metadata == {"team": "search"} and stored.usage["output_tokens"] == 4
    assert stored.response["output"][0]["content"][0]["text"] == "He had three daughters."
    assert not StoredCompletion.objects.filter(job=job).exists()


def test_the_worker_keeps_a_response_in_its_end_statement_on_its_loop():
    """It already holds the job as it ended, and its owner has no webhook endpoint: the stored
    response is written by the end's own statement on the worker loop's connection, so nothing
    runs on Django's connections (no thread, no transaction, nothing read back)."""
    job = make_response({"store": True})
    with statements_on_django_connections() as sql:
        job_run(job_id=str(job.pk))
    assert sql == []
    assert StoredResponse.objects.get(job=job).status == "completed"


def test_a_response_without_store_is_not_kept():
    job = run_response({"store": False})
    assert not StoredResponse.objects.filter(job=job).exists()


def test_the_purge_command_deletes_only_responses_past_the_retention(spool_env):
    spool_env(SPOOL_RESPONSES_RETENTION_DAYS=7)
    old, fresh = run_response({"store": True}), run_response({"store": True})
    StoredResponse.objects.filter(job=old).update(created_at=timezone.now() - timedelta(days=8))
    call_command("spool_purge_responses")
    assert list(StoredResponse.objects.values_list("job_id", flat=True)) == [fresh.pk]


def test_the_dashboard_lists_stored_responses_and_filters_them_by_metadata(admin_client):
    search = run_response({"store": True, "metadata": {"team": "search"}})
    other = run_response({"store": True, "metadata": {"team": "ads"}})
    page = admin_client.get("/admin/jobs/storedresponse/").content.decode()
    assert responses.response_id(search.pk).removeprefix("resp_")[:12] in page
    assert "He had three daughters." in page
    filtered = admin_client.get("/admin/jobs/storedresponse/?meta=team=search").content.decode()
    assert responses.response_id(search.pk).removeprefix("resp_")[:12] in filtered
    assert responses.response_id(other.pk).removeprefix("resp_")[:12] not in filtered
    # As the admin links it: quote() escapes the "_" in the id.
    detail = admin_client.get(f"/admin/jobs/storedresponse/{quote(responses.response_id(search.pk))}/change/")
    assert detail.status_code == 200


def test_a_response_cancelled_while_queued_is_kept_cancelled():
    user = services.user_ensure(username="ann")
    engine = Engine.objects.create(name="scripted-q", kind="scripted", config={"script": SCRIPT})
    job = services.job_create(
        owner=user,
        engine=engine,
        request=GenerationRequest(messages=[{"role": "user", "content": "hi"}]),
        options={"store": True, "background": True},
        face=responses.FACE,
    )
    services.job_cancel(job.pk)
    stored = StoredResponse.objects.get(job=job)
    assert stored.status == "cancelled" and stored.response["status"] == "cancelled"


def test_a_response_whose_worker_was_lost_is_kept_failed(monkeypatch):
    from jobs import chunklog, sweeper

    job = run_response({"store": True})
    StoredResponse.objects.filter(job=job).delete()
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING)
    monkeypatch.setattr(chunklog, "read_all", lambda job_id: SCRIPT[:2])
    assert sweeper.reap(str(job.pk), 1)
    stored = StoredResponse.objects.get(job=job)
    assert stored.status == "failed" and stored.response["error"]["code"] == "worker_lost"
