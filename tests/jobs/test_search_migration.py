"""The migration that adds full-text search, run on a seeded table: every row gets its vector,
batches commit one by one while other writers carry on, and the index is built and valid."""

from __future__ import annotations

import io
from typing import Any

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from jobs import search

pytestmark = pytest.mark.django_db(transaction=True)  # CREATE INDEX CONCURRENTLY needs autocommit


def _migration() -> tuple[tuple[str, str], tuple[str, str]]:
    """(the search migration, the one before it), found by name so a renumbering keeps this test."""
    graph = MigrationExecutor(connection).loader.graph
    (mine,) = [key for key in graph.nodes if key[0] == "jobs" and key[1].endswith("storedcompletion_search")]
    (parent,) = [key for key in graph.node_map[mine].parents if key[0] == "jobs"]
    return mine, parent


def _migrate(target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])


def _other_connection() -> psycopg.Connection:
    settings = connection.settings_dict
    return psycopg.connect(
        dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"], port=settings["PORT"] or 5432,
        autocommit=True,
    )  # fmt: skip


def _scalar(sql: str) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


def test_the_migration_fills_a_seeded_table_in_batches_without_stopping_writers(monkeypatch):
    call_command("spool_seed_completions", 230, seed=7, stdout=io.StringIO())
    mine, parent = _migration()
    _migrate(parent)
    try:
        assert not _scalar(
            "SELECT count(*) FROM information_schema.columns"
            " WHERE table_name = 'jobs_storedcompletion' AND column_name = 'search'"
        )
        monkeypatch.setattr(search, "BATCH", 50)
        seen: list[tuple[int, int]] = []
        real_backfill = search.backfill

        def watched(**kwargs: Any) -> int:
            def progress(done: int) -> None:
                # Seen from another session between two batches: what is done is committed, and a
                # writer changes a row the backfill has not reached without waiting for a lock.
                with _other_connection() as other:
                    other.execute("SET lock_timeout = '5s'")  # a held lock fails the test, not hangs it
                    filled = other.execute(
                        "SELECT count(*) FROM jobs_storedcompletion WHERE search IS NOT NULL"
                    ).fetchone()[0]
                    other.execute(
                        'UPDATE jobs_storedcompletion SET metadata = metadata || \'{"seen": "1"}\''
                        " WHERE id = (SELECT max(id) FROM jobs_storedcompletion)"
                    )
                seen.append((done, filled))

            return real_backfill(progress=progress, **kwargs)

        monkeypatch.setattr(search, "backfill", watched)
        _migrate(mine)
    finally:
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes("jobs")[0])

    assert [done for done, _ in seen] == [50, 100, 150, 200, 230]
    assert all(filled >= done for done, filled in seen)
    assert _scalar("SELECT count(*) FROM jobs_storedcompletion WHERE search IS NULL") == 0
    assert _scalar(
        "SELECT count(*) FROM jobs_storedcompletion"
        " WHERE search IS DISTINCT FROM spool_completion_document(request, response)"
    ) == 0  # fmt: skip
    assert _scalar("SELECT count(*) FROM jobs_storedcompletion WHERE metadata ? 'seen'") == 1
    assert _scalar(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'storedcmpl_search'::regclass"
    )  # fmt: skip
    assert _scalar(
        "SELECT attstattarget FROM pg_attribute"
        " WHERE attrelid = 'jobs_storedcompletion'::regclass AND attname = 'search'"
    ) == 1000  # fmt: skip


def test_the_command_fills_missing_vectors_and_rebuilds_all_on_request():
    call_command("spool_seed_completions", 40, seed=3, stdout=io.StringIO())
    with connection.cursor() as cursor:
        cursor.execute("UPDATE jobs_storedcompletion SET search = NULL WHERE id < 'chatcmpl-8'")
        missing = cursor.rowcount
    out = io.StringIO()
    call_command("spool_search_index", "--batch", "7", stdout=out)
    assert f"computed for {missing:,} stored" in out.getvalue()
    assert _scalar("SELECT count(*) FROM jobs_storedcompletion WHERE search IS NULL") == 0
    out = io.StringIO()
    call_command("spool_search_index", "--rebuild", stdout=out)
    assert "computed for 40 stored" in out.getvalue()
