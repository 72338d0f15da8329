"""The statements a job costs the worker in Postgres: one claims and reads it with its engine (or
two, a read and a claim, when the runner overlaps them with the job's start), one ends it (job
row, room message, the stored response or completion it keeps, and whether its owner wants
webhook events). Raw SQL, because the ORM building them was most of their CPU (profiles in
docs/PROFILE-worker.md): a claim through Job.objects.raw() remapped the model's fields on every
query, and the end through QuerySet.update(), RoomMessage.objects.create() and the webhook
endpoints' filter built three queries per job where one statement does. The claim and the end of
a job whose owner has no enabled webhook endpoint run on the worker loop's async connections
(jobs.worker.database), each one autocommitted statement; the end of a job whose owner has one
runs on Django's connection, in the transaction that also writes its events."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

import orjson
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, JSONField, Model

from jobs import lifecycle
from jobs.models import Engine, Job, RoomMessage
from jobs.webhooks.models import WebhookEndpoint
from jobs.worker import database

M = TypeVar("M", bound=Model)

# What the runner reads of a job and its engine, and what a job's end keeps of it (a stored
# response or completion, in the end's transaction); any other field is loaded on access
# (Django's deferred fields), one query each.
_JOB_FIELDS = (
    "id",
    "owner_id",
    "engine_id",
    "room_id",
    "face",
    "request",
    "options",
    "status",
    "created_at",
    "started_at",
)
_ENGINE_FIELDS = (
    "id",
    "name",
    "kind",
    "config",
    "secret",
    "max_concurrency",
    "requests_per_minute",
    "tokens_per_minute",
    "has_deployments",
)


def _column(model: type[Model], name: str) -> str:
    # Each name is a concrete field of the model, never a reverse relation or a generic foreign
    # key, which have no column.
    return cast("Field[Any, Any]", model._meta.get_field(name)).column


def _columns(model: type[Model], names: tuple[str, ...], table: str) -> str:
    return ", ".join(f"{table}.{_column(model, name)}" for name in names)


_JOBS = Job._meta.db_table

# A job's claim, in one statement or in two the runner overlaps with the job's start
# (jobs/worker/runner.py): _CLAIM claims a queued job and reads it with its engine; _READ_TO_CLAIM
# only reads, and _MARK_CLAIMED then claims. Each holds the row-count guard: a job taken by an
# earlier delivery, or cancelled while queued, is neither read nor claimed. A running job whose
# started_at is this claim's own time was claimed by this very delivery, in an attempt whose
# answer was lost on the way back: it is claimed again, not skipped. The engine is read with the
# job, never cached: an edit applies to the next job.
_TO_CLAIM = "{t}.id = %s AND ({t}.status = %s OR ({t}.status = %s AND {t}.started_at = %s))"
_MARK_CLAIMED = f"UPDATE {_JOBS} SET status = %s, started_at = %s WHERE {_TO_CLAIM.format(t=_JOBS)}"
_JOINED = (
    f"SELECT {_columns(Job, _JOB_FIELDS, 'job')}, {_columns(Engine, _ENGINE_FIELDS, 'engine')}"
    f" FROM {{}} job JOIN {Engine._meta.db_table} engine"
    f" ON engine.{Engine._meta.pk.column} = job.{_column(Job, 'engine_id')}"
)
_CLAIM = (
    f"WITH claimed AS ({_MARK_CLAIMED} RETURNING {_columns(Job, _JOB_FIELDS, _JOBS)})"
    f" {_JOINED.format('claimed')}"
)
_READ_TO_CLAIM = _JOINED.format(_JOBS) + f" WHERE {_TO_CLAIM.format(t='job')}"


def _guard(job_id: str, now: datetime) -> tuple[Any, ...]:
    return (job_id, Job.Status.QUEUED, Job.Status.RUNNING, now)


def _job_of(row: Sequence[Any]) -> Job:
    job = _from_db(Job, _JOB_FIELDS, row[: len(_JOB_FIELDS)])
    job.engine = _from_db(Engine, _ENGINE_FIELDS, row[len(_JOB_FIELDS) :])
    return job


async def claim(job_id: str, now: datetime) -> Job | None:
    """The job, now running, with its engine; None if it was not queued any more. `now` is the
    delivery's claim time: the same for each retry of one delivery's claim."""
    row = await database.fetchone(_CLAIM, (Job.Status.RUNNING, now, *_guard(job_id, now)))
    return None if row is None else _job_of(row)


async def read_to_claim(job_id: str, now: datetime) -> Job | None:
    """The job with its engine as its claim at `now` will make it (running, started then), if it
    is still to be claimed; None if not. Writes nothing: mark_claimed does."""
    row = await database.fetchone(_READ_TO_CLAIM, _guard(job_id, now))
    if row is None:
        return None
    job = _job_of(row)
    job.status, job.started_at = Job.Status.RUNNING, now
    return job


async def mark_claimed(job_id: str, now: datetime) -> bool:
    """The job read by read_to_claim marked running since `now`; False if it was not to be
    claimed any more."""
    row = await database.fetchone(
        _MARK_CLAIMED + " RETURNING id", (Job.Status.RUNNING, now, *_guard(job_id, now))
    )
    return row is not None


def unclaim(job_id: str) -> None:
    """A claimed job back to queued: its engine had no slot for it after all (see
    jobs.scheduling.admission.take), and it waits in the engine's queue again."""
    Job.objects.filter(id=job_id, status=Job.Status.RUNNING).update(status=Job.Status.QUEUED, started_at=None)


@functools.cache
def _converting() -> BaseDatabaseWrapper:
    # A wrapper of its own, never connected (the fields' converters only read its settings): the
    # one Django keeps for the loop's thread would be closed there by Celery's Django fixup
    # after each task, and closing is a sync-only call.
    return connections.create_connection(DEFAULT_DB_ALIAS)


def _from_db(model: type[M], names: tuple[str, ...], row: Sequence[Any]) -> M:
    """A model instance from some of its columns, each converted as the field does (JSON
    columns come back as text)."""
    values = {}
    for name, value in zip(names, row, strict=True):
        convert = getattr(model._meta.get_field(name), "from_db_value", None)
        values[name] = convert(value, None, _converting()) if convert and value is not None else value
    # from_db takes a subset of the fields in the model's field order.
    ordered = [f.attname for f in model._meta.concrete_fields if f.attname in values]
    return model.from_db(DEFAULT_DB_ALIAS, ordered, [values[name] for name in ordered])


_ENDED = ("status", "finished_at", "first_chunk_at", "finish_reason", "usage", "error", "result", "chunks")
_JSON = frozenset({"usage", "result", "chunks"})
_MESSAGES = RoomMessage._meta.db_table
_MESSAGE_FIELDS = ("room_id", "job_id", "role", "content", "tool_calls", "created_at")
_ENDPOINTS = WebhookEndpoint._meta.db_table

# Ends a running job: the row-count guard (a job the sweeper or a cancel ended first is not
# updated), the room's assistant message when the job succeeded in a room, and whether the owner
# has an enabled webhook endpoint, so the events are looked for only when someone wants them.
# With `alone` the job is ended only if it has no such endpoint: its events must be written in
# the end's own transaction, on the connection that writes them (end_with, from Django's).
# _end_keeping adds the job's stored row to it.
_ENDPOINT_OF = (
    f"SELECT 1 FROM {_ENDPOINTS} endpoint WHERE endpoint.{_column(WebhookEndpoint, 'owner_id')} = %s"
    f" AND endpoint.{_column(WebhookEndpoint, 'enabled')}"
)
_ENDED_CTES = (
    f"WITH ended AS (UPDATE {_JOBS} SET "
    + ", ".join(f"{_column(Job, name)} = %s{'::jsonb' if name in _JSON else ''}" for name in _ENDED)
    + f" WHERE id = %s AND status = %s AND (NOT %s OR NOT EXISTS ({_ENDPOINT_OF}))"
    f" RETURNING id, {_column(Job, 'room_id')}),"
    f" message AS (INSERT INTO {_MESSAGES} ({', '.join(_column(RoomMessage, n) for n in _MESSAGE_FIELDS)})"
    f" SELECT ended.{_column(Job, 'room_id')}, ended.id, 'assistant', %s, %s::jsonb, %s FROM ended"
    f" WHERE %s AND ended.{_column(Job, 'room_id')} IS NOT NULL)"
)
_ANSWER = f" SELECT EXISTS (SELECT 1 FROM ended), EXISTS ({_ENDPOINT_OF})"
_END = _ENDED_CTES + _ANSWER


@functools.cache  # read on every stored end; a model's fields are fixed once Django is set up
def _stored_fields(model: type[lifecycle.Kept]) -> tuple[Field[Any, Any], ...]:
    fields = (model._meta.pk, *(model._meta.get_field(name) for name in lifecycle.kept_fields(model)))
    return cast("tuple[Field[Any, Any], ...]", fields)


@functools.cache
def _end_keeping(model: type[lifecycle.Kept]) -> str:
    """_END that also keeps the job's stored row (a stored response or completion, its values
    given) in the same statement: selected from `ended`, so it is written only when this very
    update ended the job. A row already there (an earlier end of the same job id) is updated, as
    lifecycle.ended's ORM upsert does. A stored completion's search vector is filled by its
    trigger, on this insert as on any (jobs/search.py)."""
    fields = _stored_fields(model)
    columns = [field.column for field in fields]
    values = ", ".join("%s::jsonb" if isinstance(field, JSONField) else "%s" for field in fields)
    updates = ", ".join(f"{column} = EXCLUDED.{column}" for column in columns[1:])
    return (
        _ENDED_CTES + f", stored AS (INSERT INTO {model._meta.db_table} ({', '.join(columns)})"
        f" SELECT {values} FROM ended ON CONFLICT ({columns[0]}) DO UPDATE SET {updates})" + _ANSWER
    )


# Whether an attempt of this end whose answer was lost did end the job.
_ENDED_AS = f"SELECT 1 FROM {_JOBS} WHERE id = %s AND status = %s AND {_column(Job, 'finished_at')} = %s"


def _json(value: Any) -> str | None:
    # None is SQL NULL, as the ORM stores it for a nullable JSONField. orjson writes what
    # json.dumps would for the plain dicts and lists of a result and a chunk log (keys that are
    # not strings become strings, as json.dumps makes them), several times faster.
    return None if value is None else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _end_params(
    job: Job,
    values: dict[str, Any],
    message: dict[str, Any] | None,
    *,
    alone: bool,
    kept: lifecycle.Kept | None = None,
) -> list[Any]:
    params: list[Any] = [_json(values[name]) if name in _JSON else values[name] for name in _ENDED]
    params += [job.pk, Job.Status.RUNNING, alone, job.owner_id]
    message = message or {}
    params += [message.get("content", ""), _json(message.get("tool_calls")), values["finished_at"]]
    params += [bool(message)]
    if kept is not None:
        for field in _stored_fields(type(kept)):
            value = getattr(kept, field.attname)
            params.append(_json(value) if isinstance(field, JSONField) else value)
    params += [job.owner_id]
    return params


def end_with(job: Job, values: dict[str, Any], message: dict[str, Any] | None) -> bool | None:
    """Set the ended job's fields (names of _ENDED) if it is still running, and add `message`
    (content, tool_calls) to its room if given. None if the job was not running any more;
    else whether its owner has an enabled webhook endpoint. Runs in the caller's transaction
    on Django's connection, which then keeps the rest (lifecycle.ended)."""
    with connection.cursor() as cursor:
        cursor.execute(_END, _end_params(job, values, message, alone=False))
        ended, wants_events = cursor.fetchone()
    return bool(wants_events) if ended else None


async def end_alone(
    job: Job, values: dict[str, Any], message: dict[str, Any] | None, kept: lifecycle.Kept | None = None
) -> tuple[bool, bool]:
    """end_with on the loop, in one autocommitted statement, for a job whose owner has no
    enabled webhook endpoint: (ended, wants_events). With `kept` (lifecycle.kept of the job, the
    end's values set) its stored response or completion is written in the same statement, only
    if this statement ended the job. A job whose owner has an enabled endpoint is not ended here
    (False, True): its events must be written in the end's own transaction, on Django's
    connection."""
    statement = _END if kept is None else _end_keeping(type(kept))
    params = _end_params(job, values, message, alone=True, kept=kept)
    row = await database.fetchone(statement, params)
    assert row is not None  # the statement's last SELECT always answers one row
    return bool(row[0]), bool(row[1])


async def ended_as(job: Job) -> bool:
    """Whether the job is ended with this status and finish time: by an attempt of this very end
    whose answer was lost."""
    async with database.connection() as conn:
        cursor = await conn.execute(_ENDED_AS, (job.pk, job.status, job.finished_at))
        return await cursor.fetchone() is not None
