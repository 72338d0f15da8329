"""The jobs admin through Django's test client: the list, the cancel action and button, and the
chunk log of a running job read live from Redis."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from jobs import chunklog, services
from jobs.models import Engine, Job

pytestmark = pytest.mark.django_db

LIST = "/admin/jobs/job/"


@pytest.fixture(autouse=True)
def clean_redis(redis_clean):
    yield redis_clean


def make_job(status: str = Job.Status.RUNNING, **fields) -> Job:
    owner = services.user_ensure(username="ann")
    engine, _ = Engine.objects.get_or_create(name="spool-offline", defaults={"kind": "offline"})
    return Job.objects.create(owner=owner, engine=engine, request={"messages": []}, status=status, **fields)


def test_the_list_shows_status_engine_owner_and_timings(admin_client):
    now = timezone.now()
    job = make_job(
        Job.Status.SUCCEEDED,
        started_at=now + timedelta(milliseconds=20),
        first_chunk_at=now + timedelta(milliseconds=300),
        finished_at=now + timedelta(seconds=2),
        usage={"input_tokens": 9, "output_tokens": 40},
    )
    Job.objects.filter(pk=job.pk).update(created_at=now)
    body = admin_client.get(LIST).content.decode()
    row = body[body.index(str(job.pk)[:8]) :]
    assert "ann" in row and "spool-offline" in row and "succeeded" in row
    assert "20 ms" in row and "300 ms" in row and "2,000 ms" in row and "9 / 40" in row


def test_the_cancel_action_ends_a_queued_job_and_asks_a_running_one_to_stop(admin_client, redis_clean):
    queued, running, done = make_job(Job.Status.QUEUED), make_job(), make_job(Job.Status.SUCCEEDED)
    response = admin_client.post(
        LIST, {"action": "cancel", "index": "0", "_selected_action": [queued.pk, running.pk, done.pk]}
    )
    assert response.status_code == 302
    queued.refresh_from_db()
    assert queued.status == Job.Status.CANCELLED and queued.finish_reason == "cancelled"
    assert redis_clean.exists(chunklog.cancel_key(str(running.pk)))  # the worker stops on its next append
    assert not redis_clean.exists(chunklog.cancel_key(str(done.pk)))
    done.refresh_from_db()
    assert done.status == Job.Status.SUCCEEDED


def test_the_detail_page_shows_a_running_jobs_live_chunk_log_and_follows_it(admin_client):
    job = make_job()
    chunklog.append(str(job.pk), [
        {"type": "content", "data": {"content": "Once upon"}, "choice": 0},
        {"type": "content", "data": {"content": " a time"}, "choice": 0},
    ])  # fmt: skip
    page = admin_client.get(f"{LIST}{job.pk}/change/").content.decode()
    assert '<div class="spool-text spool-log-text">Once upon a time</div>' in page
    assert 'data-cursor="2"' in page and 'data-finished="0"' in page
    assert "Cancel job" in page

    chunklog.append(str(job.pk), [{"type": "content", "data": {"content": ", a king"}, "choice": 0}])
    follow = admin_client.get(f"{LIST}{job.pk}/chunks/?cursor=2").json()
    assert follow["cursor"] == 3 and follow["text"] == ", a king" and not follow["finished"]
    assert [row["seq"] for row in follow["chunks"]] == [2]


def test_a_finished_jobs_log_comes_from_its_archive(admin_client):
    job = make_job(Job.Status.SUCCEEDED, chunks=[
        {"type": "content", "data": {"content": "Done."}, "choice": 0},
        {"type": "finish", "data": {"finish_reason": "stop"}, "choice": 0},
    ])  # fmt: skip
    follow = admin_client.get(f"{LIST}{job.pk}/chunks/?cursor=0").json()
    assert follow["finished"] and follow["text"] == "Done." and len(follow["chunks"]) == 2
    page = admin_client.get(f"{LIST}{job.pk}/change/").content.decode()
    assert "Cancel job" not in page


def test_the_cancel_button_cancels_and_returns_to_the_job(admin_client):
    job = make_job(Job.Status.QUEUED)
    response = admin_client.post(f"{LIST}{job.pk}/cancel/")
    assert response.status_code == 302 and response["Location"].endswith(f"{job.pk}/change/")
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED


def test_staff_who_may_only_view_jobs_cannot_cancel_them():
    viewer = services.user_ensure(username="viewer")
    viewer.is_staff = True
    viewer.set_password("pw")
    viewer.save()
    viewer.user_permissions.add(Permission.objects.get(codename="view_job"))
    client = Client()
    client.force_login(viewer)
    job = make_job(Job.Status.QUEUED)
    assert client.get(LIST).status_code == 200
    assert client.post(f"{LIST}{job.pk}/cancel/").status_code == 404
    client.post(LIST, {"action": "cancel", "index": "0", "_selected_action": [job.pk]})
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED


def test_the_search_box_finds_a_job_by_id_or_owner(admin_client):
    job = make_job()
    other = make_job()
    Job.objects.filter(pk=other.pk).update(owner=services.user_ensure(username="bob"))
    by_id = admin_client.get(LIST, {"q": str(job.pk)}).content.decode()
    assert str(job.pk)[:8] in by_id and str(other.pk)[:8] not in by_id
    by_owner = admin_client.get(LIST, {"q": "bob"}).content.decode()
    assert str(other.pk)[:8] in by_owner and str(job.pk)[:8] not in by_owner
