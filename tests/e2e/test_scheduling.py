"""A limited engine with the real web, Celery workers, Postgres and Redis: clients over HTTP never
get more of the upstream at once than the engine allows, every job ends, and the slots of a
SIGKILLed worker come back by themselves; on each broker for the kill."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.brokers import BROKERS, broker_of, spool_on
from tests.e2e import openai_helpers
from tests.e2e.helpers import Frontend

pytestmark = pytest.mark.e2e

# Bounds each wait so a broken scheduler fails the test instead of hanging it; not a measurement.
BOUND_SECONDS = 90


def limit(name: str, **limits: int) -> None:
    from jobs.models import Engine

    Engine.objects.filter(name=name).update(**limits)


def test_an_engine_limited_to_two_runs_two_at_once_and_every_request_is_answered(spool, upstream, pg):
    from jobs.models import Job

    # An upstream that serves 2 at once and answers 429 to a third, as a small model server does.
    model = f"fake?tokens=10&tps=50&max_concurrency=2&run={time.monotonic_ns()}"
    name = openai_helpers.upstream_engine(f"two-{time.monotonic_ns()}", upstream, model)
    limit(name, max_concurrency=2)
    client = openai_helpers.client(spool, timeout=BOUND_SECONDS)

    def ask(i: int):
        return client.chat.completions.create(model=name, messages=[{"role": "user", "content": f"q{i}"}])

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(ask, range(10)))

    assert [a.choices[0].finish_reason for a in answers] == ["stop"] * 10
    jobs = Job.objects.filter(engine__name=name)
    assert jobs.count() == 10 and set(jobs.values_list("status", flat=True)) == {Job.Status.SUCCEEDED}
    seen = httpx.get(f"{upstream}/_stats").json()["models"][model]
    assert seen["max_in_flight"] == 2 and seen["rejected_429"] == 0  # never more than it takes


@pytest.fixture(scope="module", params=BROKERS)
def leasing(request, django_db_setup, django_db_blocker, tmp_path_factory):
    """A Spool of its own (its worker gets killed) with short leases and heartbeats."""
    with spool_on(
        request.param,
        django_db_blocker,
        tmp_path_factory.mktemp(f"leasing-{request.param}-logs"),
        SPOOL_LEASE_SECONDS="3",
        SPOOL_HEARTBEAT_TTL_SECONDS="2",
        SPOOL_SWEEP_EVERY_SECONDS="0.5",
        SPOOL_REQUEUE_AFTER_SECONDS="3",
    ) as running:
        yield running


def test_the_slots_of_a_killed_worker_come_back_and_every_job_ends(leasing, engine_for, pg):
    from jobs.models import Engine, Job
    from jobs.scheduling import admission

    name = engine_for("fake?tokens=100&tps=20")  # 5 s each: still running when the worker dies
    limit(name, max_concurrency=2)
    engine = Engine.objects.get(name=name)
    client = Frontend(leasing, leasing.alice)
    ids = [client.submit(str(engine.pk), f"job {i}", {"max_completion_tokens": 100}) for i in range(4)]

    deadline = time.monotonic() + BOUND_SECONDS
    while Job.objects.filter(pk__in=ids, status=Job.Status.RUNNING).count() < 2:
        assert time.monotonic() < deadline, "two jobs never started"
        time.sleep(0.1)
    assert admission.status(engine).running == 2
    leasing.processes.kill_worker()
    leasing.processes.start_worker()

    while Job.objects.filter(pk__in=ids).exclude(status__in=Job.TERMINAL).exists():
        assert time.monotonic() < deadline, "jobs never ended after the worker was killed"
        time.sleep(0.2)
    jobs = list(Job.objects.filter(pk__in=ids))
    # The two that were running end (worker_lost, or run again when they had written nothing);
    # the two that waited run on the new worker once the dead one's leases ran out.
    assert sum(job.status == Job.Status.SUCCEEDED for job in jobs) >= 2
    assert {job.finish_reason for job in jobs} <= {"stop", "length", "worker_lost"}
    assert admission.status(engine).running == 0


def test_jobs_placed_on_a_dead_deployment_run_on_the_live_one_and_none_fails(spool, upstream, pg):
    from django.conf import settings

    from harness.processes import free_port
    from jobs.models import Deployment, Engine, Job
    from jobs.redis_clients import sync_redis

    name = f"deployed-{time.monotonic_ns()}"
    openai_helpers.upstream_engine(name, upstream, "fake?tokens=10&tps=50")
    engine = Engine.objects.get(name=name)
    dead = Deployment.objects.create(
        engine=engine, name="dead", base_url=f"http://127.0.0.1:{free_port()}/v1", max_concurrency=2
    )
    Deployment.objects.create(engine=engine, name="live", base_url=upstream, max_concurrency=2)
    client = openai_helpers.client(spool, timeout=BOUND_SECONDS)

    def ask(i: int):
        return client.chat.completions.create(model=name, messages=[{"role": "user", "content": f"q{i}"}])

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(8)))

    assert [a.choices[0].finish_reason for a in answers] == ["stop"] * 8
    assert set(Job.objects.filter(engine=engine).values_list("status", flat=True)) == {Job.Status.SUCCEEDED}
    # Jobs were placed on the dead one (it is cooled down now), and ran on the live one.
    cooled = f"{settings.SPOOL.redis.prefix}:sched:{{{engine.pk}}}:cool:{dead.pk}"
    assert sync_redis().exists(cooled)


@pytest.fixture(scope="module", params=BROKERS)
def one_slot(request, django_db_setup, django_db_blocker, tmp_path_factory):
    """A Spool of its own whose worker runs one job at a time."""
    with spool_on(
        request.param,
        django_db_blocker,
        tmp_path_factory.mktemp(f"one-slot-{request.param}-logs"),
        concurrency=1,
    ) as running:
        yield running


def test_a_job_waits_behind_no_backlog_of_batch_jobs_on_an_engine_without_limits(one_slot, engine_for, pg):
    """A backlog of thirty batch-class jobs, then one of class default, on a worker with one slot:
    few batch jobs start between the default job's arrival and its start, not the backlog.

    How few is the broker's: on Redis a worker takes from its queues in turn (kombu rotates
    them), so at most one; RabbitMQ gives a freed slot to one of the channel's queues at random,
    so each batch job ahead is a coin that came up batch (1 in 2**k for k of them)."""
    from jobs.models import Job

    blocker = engine_for("fake?tokens=30&tps=20")  # 1.5 s: the backlog is whole when the default job comes
    name = engine_for("fake?tokens=2&tps=20")  # 0.1 s each
    with httpx.Client(
        base_url=one_slot.base_url,
        headers={"Authorization": f"Bearer {one_slot.alice.secret_key}"},
        timeout=30,
    ) as api:

        def submit(engine: str, **placement: str) -> str:
            body = {"engine": engine, "command": "hi", "parameters": {"max_tokens": 30}, **placement}
            response = api.post("/v1/jobs", json=body)
            assert response.status_code == 202, response.text
            return response.json()["id"]

        first = submit(blocker, priority="batch")
        batch = [submit(name, priority="batch") for _ in range(30)]
        default = submit(name)
    deadline = time.monotonic() + BOUND_SECONDS
    while Job.objects.filter(pk__in=[first, *batch, default]).exclude(status__in=Job.TERMINAL).exists():
        assert time.monotonic() < deadline, "the jobs never ended"
        time.sleep(0.2)
    job = Job.objects.get(pk=default)
    backlog = Job.objects.filter(pk__in=batch)
    ahead = backlog.filter(started_at__gt=job.created_at, started_at__lt=job.started_at).count()
    behind = backlog.filter(started_at__gt=job.started_at).count()
    assert behind >= 10, (
        f"only {behind} batch jobs were left when the default one started: no backlog to test"
    )
    # RabbitMQ: 12 or more ahead by chance is 1 in 4,096; a queue taken in order would put ~29 there.
    assert ahead <= (1 if broker_of(one_slot) == "redis" else 11), (
        f"{ahead} batch jobs started ahead of the default one"
    )
