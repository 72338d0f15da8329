"""The worker's claim and end are prepared on the worker loop's own connections: Postgres parses
and plans each once per connection. Not with SPOOL_DB_PREPARED_STATEMENTS off (a pooler that
cannot keep them). A migration while workers run breaks neither: a column added to the jobs
table, or a returned column whose type changed (the prepared claim refused, run again on a fresh
connection)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import psycopg
import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.utils import timezone

from engine.types import GenerationRequest
from jobs import services
from jobs.models import Job
from jobs.worker import database, statements
from tests.jobs.test_worker_statements import ended_values

pytestmark = pytest.mark.django_db(transaction=True)
T = TypeVar("T")


@pytest.fixture
def one_connection(spool_env) -> Callable[[Callable[[], Awaitable[T]]], T]:
    """Runs a scenario on a loop of its own, whose loop pool has one connection: each statement
    meets what the ones before prepared there."""
    spool_env(SPOOL_DB_POOL_SIZE="1")

    def run(scenario: Callable[[], Awaitable[T]]) -> T:
        async def closing() -> T:
            try:
                return await scenario()
            finally:
                await database._pools.pop(asyncio.get_running_loop()).close()

        return asyncio.run(closing())

    return run


def queued_job() -> Job:
    return services.job_create(
        owner=services.user_ensure(username="prepared"),
        engine=services.engine_ensure_offline(),
        request=GenerationRequest(messages=[{"role": "user", "content": "hi"}]),
        options={},
        face="test",
        room=None,
        user_message="hi",
    )


async def claim_and_end(job: Job) -> Job:
    claimed = await statements.claim(str(job.pk), timezone.now())
    assert claimed is not None and claimed.face == "test" and claimed.engine.name == job.engine.name
    ended, wants_events = await statements.end_alone(claimed, ended_values(Job.Status.SUCCEEDED), None)
    assert (ended, wants_events) == (True, False)
    return claimed


async def prepared_here() -> list[str]:
    async with database.connection() as conn:
        cursor = await conn.execute("SELECT statement FROM pg_prepared_statements", prepare=False)
        return [text for (text,) in await cursor.fetchall()]


def prepared_after_two_jobs(one_connection) -> list[str]:
    jobs = [queued_job(), queued_job()]

    async def two_jobs() -> list[str]:
        for job in jobs:
            await claim_and_end(job)
        return await prepared_here()

    return one_connection(two_jobs)


def test_the_claim_and_the_end_are_prepared_once_per_connection(one_connection):
    prepared = prepared_after_two_jobs(one_connection)
    assert sorted(text.split(" (")[0] for text in prepared) == ["WITH claimed AS", "WITH ended AS"]


def test_with_prepared_statements_off_nothing_is_prepared(one_connection, spool_env):
    spool_env(SPOOL_DB_PREPARED_STATEMENTS="off")
    assert prepared_after_two_jobs(one_connection) == []


@pytest.fixture
def migrated() -> Iterator[Callable[[str, str], Awaitable[None]]]:
    """await alter(change, undo): a real ALTER TABLE of the jobs table, committed on a connection
    of its own (a migration's, while workers run), undone at the test's end."""
    undo: list[str] = []

    async def alter(change: str, then_undo: str) -> None:
        params = connections.create_connection(DEFAULT_DB_ALIAS).get_connection_params()
        params.pop("cursor_factory")
        async with await psycopg.AsyncConnection.connect(**params, autocommit=True) as conn:
            await conn.execute(f"ALTER TABLE {Job._meta.db_table} {change}")
        undo.append(then_undo)

    yield alter
    with connection.cursor() as cursor:
        for change in reversed(undo):
            cursor.execute(f"ALTER TABLE {Job._meta.db_table} {change}")


def test_a_column_added_to_the_jobs_table_while_prepared_breaks_neither_claim_nor_end(
    one_connection, migrated
):
    before, after = queued_job(), queued_job()

    async def across_a_migration() -> None:
        await claim_and_end(before)
        await migrated("ADD COLUMN spool_test_added integer DEFAULT 7", "DROP COLUMN spool_test_added")
        await claim_and_end(after)

    one_connection(across_a_migration)
    assert Job.objects.get(pk=after.pk).status == Job.Status.SUCCEEDED


def test_a_claim_prepared_before_a_returned_columns_type_changed_runs_on_a_fresh_connection(
    one_connection, migrated
):
    before, after = queued_job(), queued_job()
    length = Job._meta.get_field("face").max_length

    async def across_a_migration() -> list[str]:
        await claim_and_end(before)
        await migrated(
            f"ALTER COLUMN face TYPE varchar({length * 2})", f"ALTER COLUMN face TYPE varchar({length})"
        )
        await claim_and_end(after)
        return await prepared_here()

    # The connection that had them prepared is gone: its successor prepared them afresh.
    assert len(one_connection(across_a_migration)) == 2
    assert Job.objects.get(pk=after.pk).status == Job.Status.SUCCEEDED
