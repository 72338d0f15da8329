"""On a worker loop with nothing to write, a job's upstream request goes out while its claim
commits (jobs/worker/runner.py, _run_claiming); a busy loop claims first. Against real Postgres
and Redis: the claim is held here by a row lock another connection takes, as a slow commit would
hold it. Until the claim is in, nothing of the job reaches Redis; a job cancelled meanwhile never
shows a chunk, and its stream is closed. Whether the loop is busy is set by each test: the loop
is the process's, and another test's job may still be on it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from django.db import DEFAULT_DB_ALIAS, connections

from engine import registry
from jobs import chunklog
from jobs.models import Job
from jobs.redis_clients import sync_redis
from jobs.worker.runner import job_run
from jobs.worker.writer import LogWriter
from tests.jobs.test_runner import C, F, U, log_of, make_job
from tests.support import CLOSED_EARLY, SIGNALS, ScriptedEngine

pytestmark = pytest.mark.django_db(transaction=True)
PATIENCE = 30.0  # seconds a step may take on a loaded machine before the test gives up


@pytest.fixture(autouse=True)
def scripted(monkeypatch, redis_clean):
    monkeypatch.setitem(registry.KINDS, "scripted", ScriptedEngine)
    monkeypatch.setattr(LogWriter, "idle", property(lambda writer: True))
    SIGNALS.clear()
    CLOSED_EARLY.clear()


@pytest.fixture
def locked() -> Iterator[psycopg.Connection]:
    """A connection of its own, in a transaction the test commits, for the row lock."""
    params = connections.create_connection(DEFAULT_DB_ALIAS).get_connection_params()
    params.pop("cursor_factory")
    with psycopg.connect(**params) as conn:
        yield conn


def run_in_thread(job: Job) -> threading.Thread:
    runner = threading.Thread(target=job_run, kwargs={"job_id": str(job.pk)}, daemon=True)
    runner.start()
    return runner


def nothing_in_redis(job: Job) -> bool:
    job_id = str(job.pk)
    return not sync_redis().exists(chunklog.chunks_key(job_id), chunklog.alive_key(job_id))


def test_the_upstream_streams_while_the_claim_waits_and_the_first_chunk_leaves_alone_once_it_is_in(
    locked, monkeypatch
):
    appended = []
    real_append_many = chunklog.append_many

    async def counting(batch, **options):
        appended.extend([c["data"].get("content") for c in chunks] for job_id, chunks in batch if chunks)
        return await real_append_many(batch, **options)

    monkeypatch.setattr(chunklog, "append_many", counting)
    script = [{"signal": "streaming"}, C("a"), {"signal": "past the first"}, C("b"), C("c"), F("stop"), U]
    job = make_job(script)
    locked.execute("SELECT 1 FROM jobs_job WHERE id = %s FOR UPDATE", [job.pk])
    runner = run_in_thread(job)
    # The engine's stream started while the claim waits for the lock ...
    assert SIGNALS["streaming"].wait(PATIENCE)
    time.sleep(0.3)  # long enough for a write of "a" that was not held to reach Redis
    assert locked.execute("SELECT status FROM jobs_job WHERE id = %s", [job.pk]).fetchone() == ("queued",)
    assert nothing_in_redis(job)  # neither its chunks nor its heartbeat
    # ... and stopped after its first chunk: the rest waits in the upstream's connection.
    assert not SIGNALS["past the first"].is_set()
    locked.commit()
    runner.join(PATIENCE)
    assert not runner.is_alive()
    # Once claimed, the first chunk left alone, then the rest (the ending may ride with it).
    assert appended[0] == ["a"]
    assert appended[1][:2] == ["b", "c"]
    assert [c["type"] for c in log_of(job)] == ["content"] * 3 + ["usage", "finish"]
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and job.result["choices"][0]["content"] == "abc"
    assert job.started_at <= job.first_chunk_at


def test_a_job_cancelled_while_its_claim_waits_writes_nothing_and_its_stream_is_closed(locked):
    job = make_job([{"signal": "streaming"}, C("a"), C("late"), F("stop"), U])
    locked.execute("SELECT 1 FROM jobs_job WHERE id = %s FOR UPDATE", [job.pk])
    runner = run_in_thread(job)
    assert SIGNALS["streaming"].wait(PATIENCE)
    locked.execute("UPDATE jobs_job SET status = 'cancelled' WHERE id = %s", [job.pk])
    locked.commit()
    runner.join(PATIENCE)
    assert not runner.is_alive()
    assert nothing_in_redis(job)
    assert [job.engine.config["script"]] == CLOSED_EARLY
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED and job.started_at is None and job.chunks is None


def test_a_busy_loop_claims_before_the_stream_starts(locked, monkeypatch):
    monkeypatch.setattr(LogWriter, "idle", property(lambda writer: False))
    job = make_job([{"signal": "streaming"}, C("a"), F("stop"), U])
    locked.execute("SELECT 1 FROM jobs_job WHERE id = %s FOR UPDATE", [job.pk])
    runner = run_in_thread(job)
    assert not SIGNALS["streaming"].wait(0.5)  # the claim waits for the lock; nothing streams
    locked.commit()
    runner.join(PATIENCE)
    assert not runner.is_alive() and SIGNALS["streaming"].is_set()
    assert [c["type"] for c in log_of(job)] == ["content", "usage", "finish"]
