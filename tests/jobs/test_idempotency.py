"""Idempotency keys on job creation (jobs/idempotency.py), on the real Postgres: a retried create
returns the job the first one made, another request under the same key is refused, and of many
concurrent creates with one key exactly one makes a job."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import close_old_connections

from engine.types import GenerationRequest
from jobs import queueing, services
from jobs.idempotency import IdempotencyConflict
from jobs.jobview import JobView
from jobs.models import IdempotencyKey, Job
from jobs.placement import Placement

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def nothing_sent(monkeypatch, redis_clean):
    monkeypatch.setattr(queueing, "send_job", lambda job_id: None)


def create(owner, text: str = "hello", key: str | None = "k1") -> JobView:
    return services.job_start(
        owner=owner,
        engine=services.engine_ensure_offline(),
        request=GenerationRequest(messages=[{"role": "user", "content": text}], max_tokens=5),
        options={"stream": False},
        face="openai",
        placement=Placement(idempotency_key=key, waiting=True),
    )


def test_the_same_key_and_request_return_the_first_job():
    owner = services.user_ensure(username="idem-a")
    first, again = create(owner), create(owner)
    assert again.id == first.id and again.replayed and not first.replayed
    assert not getattr(first, "replayed", False)
    assert Job.objects.filter(owner=owner).count() == 1


def test_the_same_key_with_another_request_is_a_conflict():
    owner = services.user_ensure(username="idem-b")
    create(owner, "hello")
    with pytest.raises(IdempotencyConflict):
        create(owner, "something else")
    assert Job.objects.filter(owner=owner).count() == 1


def test_keys_are_per_owner_and_requests_without_one_are_never_merged():
    alice, bob = services.user_ensure(username="idem-c1"), services.user_ensure(username="idem-c2")
    assert create(alice).pk != create(bob).pk
    assert create(alice, key=None).pk != create(alice, key=None).pk


def test_a_key_older_than_a_day_makes_a_new_job():
    owner = services.user_ensure(username="idem-d")
    first = create(owner)
    IdempotencyKey.objects.filter(owner=owner).update(created_at=first.created_at - timedelta(hours=25))
    second = create(owner, "another request, after a day")
    assert second.pk != first.pk and not getattr(second, "replayed", False)


def test_of_many_concurrent_creates_with_one_key_exactly_one_makes_a_job():
    owner = services.user_ensure(username="idem-e")
    ids: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(20)

    def one() -> None:
        try:
            start.wait()
            ids.append(str(create(owner, key="the-same").pk))
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=one) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(ids) == 20 and len(set(ids)) == 1
    assert Job.objects.filter(owner=owner).count() == 1
