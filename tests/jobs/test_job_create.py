"""A job's creation in Postgres and Redis (services._job_make), against real Postgres and Redis:
a job of one row is its INSERT alone, autocommitted (no BEGIN and COMMIT round trips); the rows
that must commit together (a SEMOSS job and its room's user message, a job and its idempotency
key) still do; the live meta goes to Redis before the row, so Redis away refuses the create
with nothing left in Postgres for the sweeper to send later."""

from __future__ import annotations

from datetime import datetime
from unittest import mock

import orjson
import pytest
import redis
from django.db import connection

from engine.types import GenerationRequest
from jobs import chunklog, services
from jobs.models import Job, RoomMessage
from jobs.placement import Placement
from tests.redis_outage import redis_down  # noqa: F401  (a fixture)

# Autocommit is what is tested: no test transaction around the create.
pytestmark = pytest.mark.django_db(transaction=True)

REQUEST = GenerationRequest(messages=[{"role": "user", "content": "Tell me of the king."}])


@pytest.fixture
def owner(db):
    return services.user_ensure(username="creator")


@pytest.fixture
def engine(db):
    return services.engine_ensure_offline()


@pytest.fixture
def sent():
    """The jobs sent to the workers (no broker here)."""
    with mock.patch("jobs.queueing.send_job") as send:
        yield send


def writes_of(create) -> tuple[object, list[tuple[str, bool]]]:
    """What create() returns, and each INSERT it ran: its table and whether a transaction was
    open around it."""
    seen: list[tuple[str, bool]] = []

    def record(execute, sql, params, many, context):
        words = sql.split()
        if words[:2] == ["INSERT", "INTO"]:
            seen.append((words[2].strip('"'), connection.in_atomic_block or not connection.get_autocommit()))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        made = create()
    return made, seen


def test_a_job_of_one_row_is_its_insert_alone_outside_any_transaction(owner, engine, sent, redis_clean):
    view, writes = writes_of(
        lambda: services.job_start(owner=owner, engine=engine, request=REQUEST, options={}, face="openai")
    )
    assert writes == [(Job._meta.db_table, False)]
    sent.assert_called_once_with(str(view.pk))  # sent at once: the row is committed
    row = Job.objects.get(pk=view.pk)
    assert row.status == Job.Status.QUEUED
    # The live meta, written first, carries the row's own time.
    meta = orjson.loads(redis_clean.get(chunklog.meta_key(str(view.pk))))
    assert datetime.fromisoformat(meta["created"]) == row.created_at


def test_a_semoss_job_and_its_room_message_commit_together(owner, engine, sent):
    room = services.room_resolve(owner=owner, room_id=None)
    view, writes = writes_of(
        lambda: services.job_start(
            owner=owner,
            engine=engine,
            request=REQUEST,
            options={},
            face="semoss",
            room=room,
            user_message="Hi.",
        )
    )
    assert writes == [(Job._meta.db_table, True), (RoomMessage._meta.db_table, True)]
    assert RoomMessage.objects.get(room=room).job_id == view.pk
    sent.assert_called_once_with(str(view.pk))


def test_a_job_with_an_idempotency_key_is_written_with_the_key(owner, engine, sent):
    def create():
        return services.job_start(
            owner=owner,
            engine=engine,
            request=REQUEST,
            options={},
            face="jobs",
            placement=Placement(idempotency_key="order-1"),
        )

    first, writes = writes_of(create)
    assert (Job._meta.db_table, True) in writes and all(in_transaction for _, in_transaction in writes)
    again = create()
    assert again.pk == first.pk and again.replayed
    sent.assert_called_once_with(str(first.pk))


@pytest.mark.usefixtures("redis_down")
def test_redis_away_refuses_the_create_with_no_row_left(owner, engine, sent, spool_env):
    spool_env(SPOOL_JOBS_PER_MINUTE=0)  # its count is in Redis too: this reaches the writes
    with pytest.raises(redis.ConnectionError):
        services.job_start(owner=owner, engine=engine, request=REQUEST, options={}, face="openai")
    assert not Job.objects.exists()
    sent.assert_not_called()
