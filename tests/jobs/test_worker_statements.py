"""The worker's two statements against real Postgres: the end of a job writes what the ORM reads
back, adds the room's answer only for a success, and is a no-op for a job no longer running;
the same on Django's connection (end_with) and on the worker loop's own (claim, end_alone); on
the loop, the stored row a job keeps is written only by the statement that ended it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from engine.types import GenerationRequest
from jobs import lifecycle, services
from jobs.models import Job, Room, RoomMessage, StoredCompletion
from jobs.webhooks.models import WebhookEndpoint
from jobs.worker import runtime, statements

# The claim runs on the worker loop's own connections: the tests commit what it must see.
pytestmark = pytest.mark.django_db(transaction=True)


def end(job: Job, values: dict, message: dict | None, *, on_loop: bool) -> bool | None:
    """Either way of ending a job, answering as end_with does."""
    if not on_loop:
        return statements.end_with(job, values, message)
    ended, wants_events = runtime.run(statements.end_alone(job, values, message))
    return wants_events if ended else None


both = pytest.mark.parametrize("on_loop", [False, True], ids=["django", "loop"])


def running_job(*, room: bool = True, username: str = "statements") -> Job:
    owner = services.user_ensure(username=username)
    job = services.job_create(
        owner=owner,
        engine=services.engine_ensure_offline(),
        request=GenerationRequest(messages=[{"role": "user", "content": "hi"}]),
        options={},
        face="test",
        room=Room.objects.create(owner=owner) if room else None,
        user_message="hi",
    )
    claimed = runtime.run(statements.claim(str(job.pk), timezone.now()))
    assert claimed is not None and claimed.status == Job.Status.RUNNING
    return claimed


def ended_values(status: str, **changes: object) -> dict:
    now = timezone.now()
    values = {
        "status": status,
        "finished_at": now,
        "first_chunk_at": now - timedelta(seconds=1),
        "finish_reason": "stop",
        "usage": {"input_tokens": 3, "output_tokens": 2, "by_choice": {1: 2}},
        "error": "",
        "result": {"choices": [{"content": 'Hé \u2028 "quoted"', "tool_calls": None}]},
        "chunks": [{"type": "content", "data": {"content": "Hé"}, "seq": 0}],
    }
    return {**values, **changes}


def test_a_claim_is_a_no_op_for_a_job_not_queued():
    job = running_job(room=False)
    later = timezone.now()
    assert runtime.run(statements.claim(str(job.pk), later)) is None
    # Nor is it read to be claimed, nor claimed after such a read (the runner's overlapped claim).
    assert runtime.run(statements.read_to_claim(str(job.pk), later)) is None
    assert runtime.run(statements.mark_claimed(str(job.pk), later)) is False
    assert Job.objects.get(pk=job.pk).started_at == job.started_at


def test_a_job_read_to_be_claimed_is_as_its_claim_makes_it_and_the_claim_writes_that():
    job = running_job(room=False)
    queued = services.job_create(
        owner=job.owner, engine=job.engine, request=GenerationRequest(messages=[]), options={}, face="test"
    )
    now = timezone.now()
    read = runtime.run(statements.read_to_claim(str(queued.pk), now))
    assert read is not None and read.engine.name == job.engine.name
    assert (read.status, read.started_at) == (Job.Status.RUNNING, now)
    assert Job.objects.get(pk=queued.pk).status == Job.Status.QUEUED  # the read wrote nothing
    assert runtime.run(statements.mark_claimed(str(queued.pk), now)) is True
    assert Job.objects.values_list("status", "started_at").get(pk=queued.pk) == (Job.Status.RUNNING, now)
    # A retry of that claim, whose answer was lost, finds the job claimed at its own time.
    assert runtime.run(statements.read_to_claim(str(queued.pk), now)) is not None
    assert runtime.run(statements.mark_claimed(str(queued.pk), now)) is True


@both
def test_ending_a_job_writes_its_fields_as_the_orm_reads_them_and_the_rooms_answer(on_loop):
    job = running_job()
    values = ended_values(Job.Status.SUCCEEDED)
    calls = [{"id": "call_1", "name": "f", "arguments": "{}"}]
    assert end(job, values, {"content": "Hé", "tool_calls": calls}, on_loop=on_loop) is False
    row = Job.objects.get(pk=job.pk)
    assert row.status == Job.Status.SUCCEEDED
    assert (row.finished_at, row.first_chunk_at) == (values["finished_at"], values["first_chunk_at"])
    assert row.result == values["result"] and row.chunks == values["chunks"]
    assert row.usage == {"input_tokens": 3, "output_tokens": 2, "by_choice": {"1": 2}}  # as json.dumps
    [message] = RoomMessage.objects.filter(room_id=row.room_id, role="assistant")
    assert (message.content, message.tool_calls, message.job_id) == ("Hé", calls, job.pk)


@both
def test_a_failed_job_adds_no_answer_to_its_room_and_keeps_sql_nulls(on_loop):
    job = running_job()
    values = ended_values(Job.Status.FAILED, first_chunk_at=None, usage=None, error="boom")
    assert end(job, values, None, on_loop=on_loop) is False
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.error, row.first_chunk_at, row.usage) == (Job.Status.FAILED, "boom", None, None)
    assert Job.objects.filter(pk=job.pk, usage__isnull=True).exists()  # SQL NULL, not JSON null
    assert not RoomMessage.objects.filter(room_id=row.room_id, role="assistant").exists()


@both
def test_a_job_ended_elsewhere_first_is_left_as_it_is(on_loop):
    job = running_job()
    Job.objects.filter(pk=job.pk).update(status=Job.Status.CANCELLED, finish_reason="cancelled")
    late = {"content": "late", "tool_calls": None}
    assert end(job, ended_values(Job.Status.SUCCEEDED), late, on_loop=on_loop) is None
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.finish_reason, row.result) == (Job.Status.CANCELLED, "cancelled", None)
    assert not RoomMessage.objects.filter(room_id=row.room_id, role="assistant").exists()


def test_the_end_says_whether_the_owner_has_an_enabled_endpoint():
    job = running_job(username="with-endpoint")
    other = services.user_ensure(username="someone-else")
    WebhookEndpoint.objects.create(owner=other, url="https://example.com/hook", secret_encrypted="x")
    disabled = WebhookEndpoint.objects.create(
        owner=job.owner, url="https://example.com/hook", secret_encrypted="x", enabled=False
    )
    assert statements.end_with(job, ended_values(Job.Status.SUCCEEDED), None) is False
    job = running_job(username="with-endpoint")
    WebhookEndpoint.objects.filter(pk=disabled.pk).update(enabled=True)
    assert statements.end_with(job, ended_values(Job.Status.SUCCEEDED), None) is True


def test_on_the_loop_a_job_whose_owner_has_an_enabled_endpoint_is_left_running_for_django():
    """Its events must be written in the end's own transaction, which only Django's connection
    (end_with, with lifecycle.ended) writes."""
    job = running_job(username="hooked-loop")
    WebhookEndpoint.objects.create(owner=job.owner, url="https://example.com/hook", secret_encrypted="x")
    assert runtime.run(statements.end_alone(job, ended_values(Job.Status.SUCCEEDED), None)) == (False, True)
    assert Job.objects.get(pk=job.pk).status == Job.Status.RUNNING
    assert statements.end_with(job, ended_values(Job.Status.SUCCEEDED), None) is True


def test_an_end_whose_answer_was_lost_is_known_by_its_status_and_finish_time():
    job = running_job(room=False)
    values = ended_values(Job.Status.SUCCEEDED)
    assert runtime.run(statements.end_alone(job, values, None)) == (True, False)
    job.status, job.finished_at = values["status"], values["finished_at"]
    # The retry finds it ended, and by this very end.
    assert runtime.run(statements.end_alone(job, values, None)) == (False, False)
    assert runtime.run(statements.ended_as(job)) is True
    job.finished_at = values["finished_at"] - timedelta(seconds=1)
    assert runtime.run(statements.ended_as(job)) is False


def stored(job: Job, values: dict) -> lifecycle.Kept:
    """What the job's end keeps when it asked to be stored, as the runner builds it: from the job
    it holds, the end's values set."""
    for name, value in values.items():
        setattr(job, name, value)
    job.options = {**job.options, "store": True}
    kept = lifecycle.kept(job)
    assert kept is not None
    return kept


@pytest.mark.parametrize("status", [Job.Status.SUCCEEDED, Job.Status.FAILED])
def test_on_the_loop_the_end_writes_the_stored_row_in_its_own_statement(status):
    job = running_job(room=False)
    values = ended_values(status, first_chunk_at=None, usage=None)
    kept = stored(job, values)
    assert runtime.run(statements.end_alone(job, values, None, kept)) == (True, False)
    row = StoredCompletion.objects.get(pk=kept.pk)
    assert (row.job_id, row.status, row.first_token_ms, row.usage) == (job.pk, status, None, None)
    assert StoredCompletion.objects.filter(pk=kept.pk, usage__isnull=True).exists()  # SQL NULL


def test_a_retried_end_whose_first_attempt_was_committed_keeps_one_stored_row():
    """Its answer was lost: the retry ends nothing and writes nothing, and ended_as finds the end
    its own."""
    job = running_job(room=False)
    values = ended_values(Job.Status.SUCCEEDED)
    kept = stored(job, values)
    assert runtime.run(statements.end_alone(job, values, None, kept)) == (True, False)
    StoredCompletion.objects.filter(pk=kept.pk).update(metadata={"touched": "after the end"})
    assert runtime.run(statements.end_alone(job, values, None, kept)) == (False, False)
    assert runtime.run(statements.ended_as(job)) is True
    [row] = StoredCompletion.objects.filter(job=job)
    assert row.metadata == {"touched": "after the end"}  # not written again


def test_a_stored_row_already_there_is_updated_as_the_orm_upsert_does():
    job = running_job(room=False)
    values = ended_values(Job.Status.SUCCEEDED)
    kept = stored(job, values)
    StoredCompletion.objects.create(
        id=kept.pk,
        owner_id=job.owner_id,
        job_id=job.pk,
        model="old",
        face="old",
        request={},
        response={},
        status=Job.Status.FAILED,
        created_at=job.created_at,
    )
    assert runtime.run(statements.end_alone(job, values, None, kept)) == (True, False)
    row = StoredCompletion.objects.get(pk=kept.pk)
    assert (row.model, row.face, row.status) == (kept.model, kept.face, Job.Status.SUCCEEDED)
    assert row.response == kept.response


def test_on_the_loop_a_stored_job_ended_elsewhere_or_with_an_endpoint_keeps_nothing():
    ended_first = running_job(room=False)
    Job.objects.filter(pk=ended_first.pk).update(status=Job.Status.CANCELLED)
    values = ended_values(Job.Status.SUCCEEDED)
    assert runtime.run(statements.end_alone(ended_first, values, None, stored(ended_first, values))) == (
        False,
        False,
    )
    hooked = running_job(room=False, username="hooked-stored")
    WebhookEndpoint.objects.create(owner=hooked.owner, url="https://example.com/hook", secret_encrypted="x")
    assert runtime.run(statements.end_alone(hooked, values, None, stored(hooked, values))) == (False, True)
    assert Job.objects.get(pk=hooked.pk).status == Job.Status.RUNNING
    assert not StoredCompletion.objects.filter(job__in=[ended_first, hooked]).exists()
