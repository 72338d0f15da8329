"""A limited engine's queue (jobs/scheduling/admission.py and .lua) on the real Redis: what starts
when, in which order, and what comes back when a worker goes away. Sends to Celery are recorded
instead of sent: these tests are about what the scheduler lets through."""

from __future__ import annotations

import time
import uuid

import pytest
from django.utils import timezone

from engine.types import GenerationRequest
from jobs import queueing, redis_clients, services, sweeper
from jobs.models import Deployment, Engine, Job
from jobs.placement import BATCH, DEFAULT, INTERACTIVE, Placement
from jobs.scheduling import admission
from jobs.worker.runner import job_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch, redis_clean) -> list[str]:
    """The job ids sent to the workers, in order."""
    out: list[str] = []
    monkeypatch.setattr(queueing, "send_job", out.append)
    return out


@pytest.fixture
def timers(monkeypatch) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    monkeypatch.setattr(
        queueing, "send_admission", lambda engine_id, countdown: out.append((engine_id, countdown))
    )
    return out


def limited_engine(**limits: int) -> Engine:
    engine = services.engine_upsert(name=f"limited-{uuid.uuid4().hex[:8]}", kind="offline", config={})
    for name, value in limits.items():
        setattr(engine, name, value)
    engine.save()
    return engine


def ticket(
    job_id: str | None = None, *, tenant: str = "a", priority: str = DEFAULT, **kw
) -> admission.Ticket:
    values = {"weight": 1, "tokens": 10, "deadline": None, **kw}
    return admission.Ticket(job_id=job_id or str(uuid.uuid4()), priority=priority, tenant=tenant, **values)


def submit_all(engine: Engine, tickets: list[admission.Ticket]) -> list[str]:
    for t in tickets:
        admission.submit(engine, t)
    return [t.job_id for t in tickets]


def run_one(engine: Engine, job_id: str) -> None:
    """What a worker does with a job it was sent: take its slot, run, release."""
    assert admission.take(engine, job_id).run
    admission.release(engine, job_id, 10)


def test_no_more_jobs_start_than_the_engine_takes_and_a_release_starts_the_next(sent):
    engine = limited_engine(max_concurrency=2)
    ids = submit_all(engine, [ticket() for _ in range(5)])
    assert sent == ids[:2]
    assert admission.status(engine).waiting[DEFAULT] == 3
    assert admission.take(engine, ids[0]).run
    admission.release(engine, ids[0], 10)
    assert sent == ids[:3]  # the release woke the next one, no timer
    admission.release(engine, ids[1], 10)
    admission.release(engine, ids[2], 10)
    assert sent == ids


def test_a_waiting_interactive_job_takes_the_next_slot_before_default_and_batch(sent):
    engine = limited_engine(max_concurrency=1)
    running, batch, default, interactive = (
        ticket(),
        ticket(priority=BATCH),
        ticket(priority=DEFAULT),
        ticket(priority=INTERACTIVE),
    )
    submit_all(engine, [running, batch, default, interactive])
    assert sent == [running.job_id]
    for job_id in (running.job_id, interactive.job_id, default.job_id):
        admission.release(engine, job_id, 10)
    assert sent == [running.job_id, interactive.job_id, default.job_id, batch.job_id]


def test_owners_alternate_however_many_jobs_one_of_them_queued(sent):
    engine = limited_engine(max_concurrency=1)
    first = ticket(tenant="busy")
    busy = [ticket(tenant="busy") for _ in range(20)]
    submit_all(engine, [first, *busy])
    quiet = submit_all(engine, [ticket(tenant="quiet") for _ in range(3)])
    order: list[str] = []
    while len(sent) > len(order):
        job_id = sent[len(order)]
        order.append(job_id)
        admission.release(engine, job_id, 10)
    owner = {t.job_id: "busy" for t in [first, *busy]} | {q: "quiet" for q in quiet}
    # The quiet owner's three jobs each start right after one of the busy owner's.
    assert [owner[j] for j in order[:8]] == [
        "busy",
        "quiet",
        "busy",
        "quiet",
        "busy",
        "quiet",
        "busy",
        "busy",
    ]
    assert len(order) == 24


def test_an_owner_of_weight_two_starts_two_jobs_for_each_of_an_owner_of_weight_one(sent):
    engine = limited_engine(max_concurrency=1)
    blocker = ticket(tenant="x")
    submit_all(engine, [blocker])
    heavy = submit_all(engine, [ticket(tenant="heavy", weight=2) for _ in range(8)])
    light = submit_all(engine, [ticket(tenant="light") for _ in range(8)])
    admission.release(engine, blocker.job_id, 10)
    order: list[str] = []
    while len(sent) > len(order) + 1:
        job_id = sent[len(order) + 1]
        order.append(job_id)
        admission.release(engine, job_id, 10)
    first_nine = ["heavy" if j in heavy else "light" for j in order[:9]]
    assert first_nine.count("heavy") == 6 and first_nine.count("light") == 3
    assert set(order) == set(heavy) | set(light)


def test_requests_per_minute_admit_at_the_rate_and_schedule_one_delayed_admission(sent, timers):
    engine = limited_engine(requests_per_minute=2)
    ids = submit_all(engine, [ticket() for _ in range(4)])
    assert sent == ids[:2]
    assert admission.status(engine).reason == "rate_limited"
    # One delayed admission for when the next request is allowed (60 s / 2), not one per job.
    assert len(timers) == 1 and 25 < timers[0][1] <= 30


def test_tokens_per_minute_count_the_estimate_and_the_end_corrects_it(sent, timers):
    engine = limited_engine(tokens_per_minute=1000)
    big = [ticket(tokens=400) for _ in range(3)]
    submit_all(engine, big)
    assert sent == [big[0].job_id, big[1].job_id]  # 800 of 1000: the third would pass the limit
    # The first used 50 tokens, not 400: the 350 it did not use are free again, and the third fits.
    assert admission.take(engine, big[0].job_id).run
    admission.release(engine, big[0].job_id, 50)
    assert sent == [t.job_id for t in big]


def test_a_job_larger_than_a_minute_of_tokens_still_runs_alone(sent, timers):
    engine = limited_engine(tokens_per_minute=100)
    huge = ticket(tokens=5000)
    submit_all(engine, [huge])
    assert sent == [huge.job_id]


def test_an_upstream_hold_stops_admissions_until_it_ends(sent, timers):
    engine = limited_engine(max_concurrency=5)
    admission.hold(engine, 0.3)
    ids = submit_all(engine, [ticket() for _ in range(2)])
    assert sent == [] and admission.status(engine).reason == "held"
    assert timers and timers[0][1] == pytest.approx(0.3, abs=0.01)
    time.sleep(0.35)
    admission.admit(engine)  # what the delayed admission task does
    assert sent == ids


def test_the_slot_of_a_worker_that_died_comes_back_when_its_lease_runs_out(sent, spool_env):
    spool_env(SPOOL_LEASE_SECONDS=0.3)
    engine = limited_engine(max_concurrency=1)
    dead, waiting = submit_all(engine, [ticket(), ticket()])
    assert admission.take(engine, dead).run  # ...and its worker is SIGKILLed: no release, no renewal
    admission.tick(engine)
    assert sent == [dead]
    time.sleep(0.4)
    admission.tick(engine)  # the sweeper's
    assert sent == [dead, waiting]


def test_renewed_leases_are_kept(sent, spool_env):
    spool_env(SPOOL_LEASE_SECONDS=0.3)
    engine = limited_engine(max_concurrency=1)
    running, waiting = submit_all(engine, [ticket(), ticket()])
    assert admission.take(engine, running).run
    for _ in range(4):
        time.sleep(0.15)
        admission.renew(engine, [running])
        admission.tick(engine)
    assert sent == [running]


def test_a_job_whose_admission_ran_out_before_a_worker_took_it_goes_first_again(sent, spool_env):
    spool_env(SPOOL_ADMISSION_LEASE_SECONDS=0.2)
    engine = limited_engine(max_concurrency=1)
    late, other = submit_all(engine, [ticket(tenant="t"), ticket(tenant="t")])
    assert sent == [late]
    time.sleep(0.3)
    admission.tick(engine)  # its slot came back: it is first in line again, and sent again
    assert sent == [late, late]
    assert admission.status(engine, other).ahead == 0 and admission.status(engine, other).state == "waiting"
    assert admission.take(engine, late).run  # whichever of its messages arrives first runs it
    admission.release(engine, late, 1)
    assert sent == [late, late, other]


def test_status_says_where_a_job_waits_and_why(sent):
    engine = limited_engine(max_concurrency=1)
    ids = submit_all(engine, [ticket(tenant="t") for _ in range(3)])
    status = admission.status(engine, ids[2])
    assert (status.state, status.priority, status.reason, status.ahead) == (
        "waiting",
        DEFAULT,
        "engine_full",
        1,
    )
    assert status.running == 1 and status.waiting == {INTERACTIVE: 0, DEFAULT: 2, BATCH: 0}
    assert admission.status(engine, ids[0]).state == "admitted"


def owner():
    return services.user_ensure(username=f"sched-{uuid.uuid4().hex[:6]}")


def create(engine: Engine, user, **placement) -> Job:
    return services.job_create(
        owner=user,
        engine=engine,
        request=GenerationRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=5),
        options={},
        face="native",
        placement=Placement(**placement),
    )


@pytest.mark.django_db(transaction=True)
def test_a_job_that_waited_past_its_queue_timeout_ends_expired(sent):
    engine = limited_engine(max_concurrency=1)
    user = owner()
    running = create(engine, user)
    waiting = create(engine, user, queue_timeout=0.2)
    assert sent == [str(running.pk)]
    time.sleep(0.3)
    sweeper.sweep()
    waiting.refresh_from_db()
    assert (waiting.status, waiting.finish_reason) == (Job.Status.FAILED, "expired")
    assert waiting.chunks[-1] == {
        "type": "error",
        "data": {"code": "expired", "message": admission.EXPIRED_MESSAGE},
    }
    assert admission.status(engine).waiting[DEFAULT] == 0


@pytest.mark.django_db(transaction=True)
def test_a_cancelled_waiting_job_leaves_the_queue_and_never_starts(sent):
    engine = limited_engine(max_concurrency=1)
    user = owner()
    running, cancelled, after = create(engine, user), create(engine, user), create(engine, user)
    services.job_cancel(cancelled.pk)
    assert admission.status(engine).waiting[DEFAULT] == 1
    admission.release(engine, str(running.pk), 10)
    assert sent == [str(running.pk), str(after.pk)]


@pytest.mark.django_db(transaction=True)
def test_a_waiting_job_cancelled_through_a_face_leaves_the_queue(sent, client):
    """A face reads a live job from Redis, whose meta says nothing of its engine's limits; the
    cancel still takes it out of the engine's queue at once (before: it stayed there, and held
    a slot once admitted, until its lease ran out)."""
    engine = limited_engine(max_concurrency=1)
    user = owner()
    _, secret = services.key_create(owner=user)
    running, waiting = create(engine, user), create(engine, user)
    answer = client.post(f"/v1/jobs/{waiting.pk}/cancel", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 200 and answer.json()["status"] == Job.Status.CANCELLED
    assert admission.status(engine).waiting[DEFAULT] == 0
    admission.release(engine, str(running.pk), 10)
    assert sent == [str(running.pk)]


@pytest.mark.django_db(transaction=True)
def test_the_sweeper_sends_again_only_the_jobs_the_queue_lost(sent, spool_env):
    spool_env(SPOOL_REQUEUE_AFTER_SECONDS=0)
    engine = limited_engine(max_concurrency=1)
    user = owner()
    running, waiting, lost = create(engine, user), create(engine, user), create(engine, user)
    # The queue forgets `lost`, as when a web process died between the commit and the submit.
    admission.release(engine, str(lost.pk), None)
    sent.clear()
    sweeper.sweep()
    assert sent == []  # neither the waiting job nor the lost one jumps the queue...
    assert admission.status(engine, str(lost.pk)).state == "waiting"  # ...which holds both again
    assert admission.status(engine, str(waiting.pk)).state == "waiting"
    assert admission.status(engine, str(running.pk)).state == "admitted"


@pytest.mark.django_db(transaction=True)
def test_a_waiting_job_of_an_engine_without_limits_is_sent_at_once(sent):
    engine = limited_engine()
    job = create(engine, owner())
    assert sent == [str(job.pk)]
    assert admission.status(engine, str(job.pk)).state == ""


def test_the_queue_works_the_same_on_a_redis_cluster(sent, redis_cluster, spool_env):
    spool_env(SPOOL_CHUNKLOG_REDIS_URL=redis_cluster.url)
    spool_env(SPOOL_CHUNKLOG_REDIS_CLUSTER=True)
    redis_clients.forget_clients()
    try:
        engine = limited_engine(max_concurrency=1)
        ids = submit_all(
            engine, [ticket(priority=BATCH), ticket(priority=INTERACTIVE), ticket(priority=BATCH)]
        )
        admission.release(engine, ids[0], 1)
        assert sent == [ids[0], ids[1]]
        assert admission.status(engine).waiting[BATCH] == 1
    finally:
        redis_clients.forget_clients()


@pytest.mark.django_db(transaction=True)  # the worker loop's own connections must see the job
def test_the_claim_time_check_expires_a_job_a_worker_took_too_late(sent):
    """An engine without limits has no queue of its own: a job that sat in the workers' queue
    past its deadline ends expired when a worker takes it, without running."""
    engine = limited_engine()
    job = create(engine, owner(), queue_timeout=0.05)
    time.sleep(0.1)
    job_run(job_id=str(job.pk))
    job.refresh_from_db()
    assert (job.status, job.finish_reason) == (Job.Status.FAILED, "expired")
    assert job.first_chunk_at is None
    assert timezone.now() >= job.finished_at


def deployed_engine(*specs: tuple[str, int, int | None], **limits: int) -> Engine:
    """An engine of kind openai with a deployment per (name, weight, max_concurrency)."""
    engine = services.engine_upsert(
        name=f"deployed-{uuid.uuid4().hex[:8]}", kind="openai", config={"base_url": "http://127.0.0.1:9/v1"}
    )
    for field, value in limits.items():
        setattr(engine, field, value)
    engine.save()
    for name, weight, most in specs:
        url = f"http://{name}.invalid/v1"
        Deployment.objects.create(engine=engine, name=name, base_url=url, weight=weight, max_concurrency=most)
    engine.refresh_from_db()  # has_deployments, set by the deployments' signal
    assert engine.has_deployments and engine.is_limited
    return engine


def placed_on(engine: Engine, job_ids: list[str]) -> list[str]:
    names = {str(d.pk): d.name for d in Deployment.objects.filter(engine=engine)}
    return [names.get(admission.take(engine, job_id).deployment, "") for job_id in job_ids]


def test_jobs_are_placed_on_deployments_with_room_each_within_its_own_capacity(sent):
    engine = deployed_engine(("a", 1, 1), ("b", 1, 1))
    ids = submit_all(engine, [ticket() for _ in range(3)])
    assert sent == ids[:2]  # two deployments of one slot each: two at once
    assert sorted(placed_on(engine, ids[:2])) == ["a", "b"]
    admission.release(engine, ids[0], 1)
    assert sent == ids


def test_deployments_share_the_jobs_by_weight(sent):
    engine = deployed_engine(("heavy", 3, None), ("light", 1, None), max_concurrency=8)
    ids = submit_all(engine, [ticket() for _ in range(8)])
    placed = placed_on(engine, ids)
    assert (placed.count("heavy"), placed.count("light")) == (6, 2)


def test_a_cooled_deployment_gets_no_job_and_the_failed_job_goes_first_to_another(sent):
    engine = deployed_engine(("a", 1, 1), ("b", 1, 1))
    first, second, third = submit_all(engine, [ticket(tenant="t") for _ in range(3)])
    taken = admission.take(engine, first)
    job = Job(pk=first, owner_id=0, request={"messages": []}, options={"priority": DEFAULT})
    job.owner_id = "t"  # the ticket's tenant
    assert admission.another_deployment_left(engine, taken)
    admission.try_elsewhere(engine, job, taken)
    # The failed deployment is cooled: the job that failed waits first, for the other one.
    assert admission.status(engine, first).state == "waiting"
    assert admission.status(engine, first).ahead == 0
    retried = admission.take(engine, second)
    assert retried.deployment != taken.deployment
    admission.release(engine, second, 1)
    again = admission.take(engine, first)
    assert again.run and again.deployment == retried.deployment and again.tries == 1
    assert not admission.another_deployment_left(engine, again)  # each deployment had its try


def test_an_engine_left_without_limits_sends_its_waiting_jobs_at_once(
    sent, django_capture_on_commit_callbacks
):
    engine = limited_engine(max_concurrency=1)
    ids = submit_all(engine, [ticket(), ticket(priority=INTERACTIVE), ticket()])
    engine.max_concurrency = None
    with django_capture_on_commit_callbacks(execute=True):
        engine.save()  # as the admin or `spool_engine limit NAME --max-concurrency 0` do
    assert sent == [ids[0], ids[1], ids[2]]
    assert admission.status(engine).waiting == {INTERACTIVE: 0, DEFAULT: 0, BATCH: 0}


def test_a_raised_limit_starts_what_now_fits_at_once(sent, django_capture_on_commit_callbacks):
    engine = limited_engine(max_concurrency=1)
    ids = submit_all(engine, [ticket() for _ in range(3)])
    engine.max_concurrency = 3
    with django_capture_on_commit_callbacks(execute=True):
        engine.save()
    assert sent == ids


def test_the_jobs_ahead_of_a_waiting_job_leave_out_those_cancelled(sent):
    engine = limited_engine(max_concurrency=1)
    ids = submit_all(engine, [ticket(tenant="t") for _ in range(4)])
    assert admission.status(engine, ids[3]).ahead == 2
    admission.release(engine, ids[1], None)  # cancelled while it waited
    assert admission.status(engine, ids[3]).ahead == 1


def test_an_admitted_job_whose_message_never_reached_a_worker_is_sent_again(sent, spool_env):
    spool_env(SPOOL_ADMISSION_LEASE_SECONDS=0.2)
    engine = limited_engine(max_concurrency=1)
    (lost,) = submit_all(engine, [ticket()])
    assert sent == [lost]  # ...and the message is lost on its way
    time.sleep(0.3)
    admission.tick(engine)  # the sweeper's
    assert sent == [lost, lost]
    assert admission.take(engine, lost).run
