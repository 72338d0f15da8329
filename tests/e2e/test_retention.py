"""Retention and erasure on a running Spool: its worker's periodic purge deletes an old job (row
and Redis log) while a stored one and a recent one stay, each seen over HTTP; `manage.py
spool_erase_user`, run as an operator runs it, erases one user whose data came in through the
faces with the real clients, and leaves another's alone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import httpx
import pytest
from openai import OpenAI

from harness.processes import ROOT
from harness.webhook_receiver import running_receiver
from tests.e2e.helpers import Frontend
from tests.servers import Spool, User, _make_user, running_spool


@pytest.fixture(scope="module")
def spool(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Spool]:
    """Jobs kept a day, purged every second, so a purge comes within the test."""
    with running_spool(
        django_db_blocker,
        tmp_path_factory.mktemp("retention-logs"),
        SPOOL_JOB_RETENTION_DAYS="1",
        SPOOL_RETENTION_EVERY_SECONDS="1",
    ) as running:
        yield running


def native(spool: Spool, user: User) -> httpx.Client:
    return httpx.Client(
        base_url=f"{spool.base_url}/v1", headers={"Authorization": f"Bearer {user.secret_key}"}, timeout=30
    )


def run_job(spool: Spool, user: User, **body: object) -> str:
    """A job of the native face run to its end; its id."""
    with native(spool, user) as http:
        created = http.post("/jobs", json={"engine": "spool-offline", "command": "Speak.", **body})
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
        assert http.get(f"/jobs/{job_id}", params={"wait": 30}).json()["status"] == "succeeded"
    return job_id


def redis_keys(job_id: str) -> int:
    from jobs import chunklog
    from jobs.redis_clients import sync_redis

    return sum(sync_redis().exists(key) for key in chunklog.job_keys(job_id))


def eventually(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.2)


def test_the_workers_purge_deletes_an_old_job_and_keeps_a_stored_one_and_a_recent_one(spool, pg):
    from django.utils import timezone

    from jobs.models import Job

    old, stored, recent = (
        run_job(spool, spool.alice),
        run_job(spool, spool.alice, store=True),
        run_job(spool, spool.alice),
    )
    assert redis_keys(old) > 0
    Job.objects.filter(id__in=[old, stored]).update(created_at=timezone.now() - timedelta(days=2))

    with native(spool, spool.alice) as http:
        eventually(lambda: http.get(f"/jobs/{old}").status_code == 404)
        assert redis_keys(old) == 0
        assert http.get(f"/jobs/{stored}").json()["status"] == "succeeded"
        assert http.get(f"/jobs/{recent}").json()["status"] == "succeeded"
        assert redis_keys(recent) > 0


def manage(spool: Spool, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env={**os.environ, **spool.processes.env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_erasing_a_user_leaves_nothing_of_theirs_and_all_of_another(spool, pg):
    from django.contrib.auth import get_user_model

    from jobs import erasure
    from jobs.models import Job

    leaving = _make_user("leaving-e2e")
    client = OpenAI(base_url=f"{spool.base_url}/v1", api_key=leaving.secret_key)
    with running_receiver() as receiver:
        client.webhooks.create(url=receiver.url("/hook"), event_types=["job.succeeded"], name="leaving")  # type: ignore[arg-type]
        completion = client.chat.completions.create(
            model="spool-offline", store=True, messages=[{"role": "user", "content": "Speak."}]
        )
        semoss = Frontend(spool, leaving)
        pixel_job = semoss.submit(spool.engine_id, "Speak.")
        semoss.stream(pixel_job)
        native_job = run_job(spool, leaving)
        receiver.wait_for("/hook", lambda got: len(got) == 3)  # no delivery left to retry
    jobs = {
        str(job_id)
        for job_id in Job.objects.filter(owner__username="leaving-e2e").values_list("id", flat=True)
    }
    assert {native_job, pixel_job} < jobs
    alice = get_user_model().objects.get(username="alice")
    alice_before = erasure.counts(alice)

    counted = manage(spool, "spool_erase_user", "leaving-e2e", "--dry-run")
    assert counted.returncode == 0, counted.stderr
    for line in ("1 api keys", "1 webhook endpoints", "1 stored completions", "3 jobs", "1 rooms"):
        assert line in counted.stdout
    assert client.chat.completions.retrieve(completion.id).id == completion.id  # nothing deleted

    erased = manage(spool, "spool_erase_user", "leaving-e2e", "--yes")
    assert erased.returncode == 0, erased.stderr
    assert "3 jobs deleted" in erased.stdout and "Erased 'leaving-e2e'" in erased.stdout
    assert not Job.objects.filter(id__in=jobs).exists()
    assert all(redis_keys(job_id) == 0 for job_id in jobs)
    # The web forgets the key within its cache time.
    with native(spool, leaving) as http:
        eventually(lambda: http.get("/models").status_code == 401, timeout=10)
    assert erasure.counts(alice) == alice_before
