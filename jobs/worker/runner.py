"""Runs one job from a Celery task's thread: claims it and loads it from Postgres here, hands
the generation to the process's event loop and waits for it (costing no CPU), then commits the
result here. Postgres work never runs on the loop, so it never holds up other generations.

Order at the end matters: the final result is committed to Postgres before the terminal chunk
is appended, so a reader that sees the terminal chunk can always read the result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import redis
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Field, Model
from django.utils import timezone

from engine.types import FINISH, ChunkDict, GenerationRequest
from jobs import metrics, responses
from jobs.completions import completion_store
from jobs.models import Engine, Job, RoomMessage
from jobs.responses.store import response_store
from jobs.types import JobResult
from jobs.webhooks.events import job_ended
from jobs.worker import runtime
from jobs.worker.generation import Generation, error_chunk

log = logging.getLogger(__name__)
M = TypeVar("M", bound=Model)


def _release_connection() -> None:
    # Never inside a caller's transaction (tests run the runner inside one).
    if not connection.in_atomic_block:
        connection.close()


def _status_of(terminal: ChunkDict) -> str:
    if terminal["type"] == FINISH:
        return Job.Status.SUCCEEDED
    if terminal["data"].get("code") == "cancelled":
        return Job.Status.CANCELLED
    return Job.Status.FAILED


# What the runner reads of a job and its engine; any other field is loaded on access (Django's
# deferred fields).
_JOB_FIELDS = ("id", "engine_id", "room_id", "request", "options", "status", "started_at")
_ENGINE_FIELDS = ("id", "name", "kind", "config", "secret")


def _columns(model: type[Model], names: tuple[str, ...], table: str) -> str:
    # Each name is a concrete field of the model (the tuples above; engine_id its foreign key's
    # column), never a reverse relation or a generic foreign key, which have no column.
    return ", ".join(
        f"{table}.{cast('Field[Any, Any]', model._meta.get_field(name)).column}" for name in names
    )


# Claims a queued job and loads it with its engine in one statement: the row-count guard (a job
# taken by an earlier delivery, or cancelled while queued, returns no row) and the read are one
# round trip. The engine is read with the job, never cached: an edit applies to the next job.
_CLAIM = (
    f"WITH claimed AS (UPDATE {Job._meta.db_table} SET status = %s, started_at = %s"
    f" WHERE id = %s AND status = %s RETURNING {_columns(Job, _JOB_FIELDS, Job._meta.db_table)})"
    f" SELECT {_columns(Job, _JOB_FIELDS, 'claimed')}, {_columns(Engine, _ENGINE_FIELDS, 'engine')}"
    f" FROM claimed JOIN {Engine._meta.db_table} engine"
    f" ON engine.{Engine._meta.pk.column} = claimed.{Job._meta.get_field('engine_id').column}"
)


def _claim(job_id: str) -> Job | None:
    # A cursor, not Job.objects.raw(): a RawQuerySet maps the model's fields to the columns anew
    # for every query, which cost more CPU than the rest of the claim together.
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM, (Job.Status.RUNNING, timezone.now(), job_id, Job.Status.QUEUED))
        row = cursor.fetchone()
    if row is None:
        return None
    job = _from_db(Job, _JOB_FIELDS, row[: len(_JOB_FIELDS)])
    job.engine = _from_db(Engine, _ENGINE_FIELDS, row[len(_JOB_FIELDS) :])
    return job


def _from_db(model: type[M], names: tuple[str, ...], row: Sequence[Any]) -> M:
    """A model instance from some of its columns, each converted as the field does (JSON
    columns come back as text)."""
    values = {}
    for name, value in zip(names, row, strict=True):
        convert = getattr(model._meta.get_field(name), "from_db_value", None)
        values[name] = convert(value, None, connection) if convert and value is not None else value
    # from_db takes a subset of the fields in the model's field order.
    ordered = [f.attname for f in model._meta.concrete_fields if f.attname in values]
    return model.from_db(connection.alias, ordered, [values[name] for name in ordered])


def job_run(*, job_id: str) -> None:
    job = _retry_while_down(lambda: _claim(job_id), "Postgres")
    if job is None:
        # Cancelled while queued, or taken by an earlier delivery of the task: the Redis broker
        # delivers a message again once it has been unacknowledged past its visibility timeout,
        # also while its first delivery is still running. Logged, so a test can count them.
        log.info("job %s: not queued any more (cancelled, or run by an earlier delivery); skipped", job_id)
        return
    metrics.job_started(engine=job.engine.name)
    request = GenerationRequest.from_dict(job.request)
    generation = Generation(job_id, request)
    try:
        engine = job.engine.built()
    except Exception as exc:
        generation.terminal = error_chunk("engine_unavailable", f"Engine {job.engine.name!r}: {exc}")
    else:
        _release_connection()  # a generation can take minutes; don't pin a connection meanwhile
        runtime.run(generation.run(engine, settings.SPOOL_JOB_MAX_SECONDS))
    _finish(job, generation)


def _finish(job: Job, generation: Generation) -> None:
    usage_chunk, terminal = generation.ending()
    result = generation.result()
    updated = _retry_while_down(lambda: _commit(job, generation, usage_chunk, terminal, result), "Postgres")
    if not updated:
        return
    metrics.job_ended(
        engine=job.engine.name,
        status=job.status,
        duration=metrics.seconds_between(job.started_at, job.finished_at),
        ttft=metrics.seconds_between(job.started_at, job.first_chunk_at),
    )
    # Postgres has the result before the log shows the end: a reader that sees the terminal
    # chunk can always read the result.
    if not runtime.run(generation.close_log([usage_chunk, terminal], OUTAGE_PATIENCE_SECONDS)):
        log.error("job %s ended but Redis is still down; readers will get it from Postgres", job.pk)


def _commit(
    job: Job, generation: Generation, usage_chunk: ChunkDict, terminal: ChunkDict, result: JobResult
) -> bool:
    job.status = _status_of(terminal)
    job.finished_at = timezone.now()
    job.first_chunk_at = generation.first_chunk_at
    status = job.status
    with transaction.atomic():
        updated = Job.objects.filter(id=job.pk, status=Job.Status.RUNNING).update(
            status=status,
            finished_at=job.finished_at,
            first_chunk_at=job.first_chunk_at,
            finish_reason=terminal["data"].get("finish_reason") or terminal["data"].get("code", ""),
            usage=generation.usage,
            error="" if terminal["type"] == FINISH else terminal["data"]["message"],
            result=result,
            chunks=[*generation.written, usage_chunk, terminal],
        )
        if updated and job.room_id and status == Job.Status.SUCCEEDED:
            first = result["choices"][0]
            RoomMessage.objects.create(
                room_id=job.room_id,
                job=job,
                role="assistant",
                content=first["content"],
                tool_calls=first["tool_calls"] or None,
            )
        if updated and job.options.get("store"):
            # A response is kept as a stored response; every other face's job as a completion.
            if job.face == responses.FACE:
                response_store(job=job)
            else:
                completion_store(job=job)
        if updated:
            job_ended(job.pk)
    return bool(updated)


# How long a finished job keeps trying to reach Postgres or Redis before giving up on it.
OUTAGE_PATIENCE_SECONDS = 120.0


def _retry_while_down(action: Callable[[], Any], what: str) -> Any:
    """Run action, retrying with backoff while the database or Redis is unreachable."""
    deadline = time.monotonic() + OUTAGE_PATIENCE_SECONDS
    pause = 0.2
    while True:
        try:
            return action()
        except (OperationalError, InterfaceError, redis.RedisError) as exc:
            if time.monotonic() + pause > deadline:
                raise
            metrics.backend_error("redis" if isinstance(exc, redis.RedisError) else "postgres")
            log.warning("%s unavailable (%s); retrying in %.1f s", what, exc, pause)
            _release_connection()
            time.sleep(pause)
            pause = min(pause * 2, 5.0)
