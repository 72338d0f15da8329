"""Retention: what has passed its age is deleted by a periodic task in each worker (one worker at
a time, under a Postgres advisory lock) or by `manage.py spool_purge`:

- ended jobs older than SPOOL_JOB_RETENTION_DAYS: the row (with its archived chunk log) and its
  Redis keys. A job behind a stored completion or a stored response stays while that does: a
  stored response is rendered from its job's archived log and input, and a stored completion is
  the job's by a cascading one-to-one key. Those follow their own rules (the owner's delete; the
  responses' retention below), after which their job goes with the next run;
- finished webhook deliveries (with their attempts) older than
  SPOOL_WEBHOOK_DELIVERY_RETENTION_DAYS; a pending one is still being retried and stays;
- stored responses older than SPOOL_RESPONSES_RETENTION_DAYS, the overview's rollup rows older
  than SPOOL_ROLLUP_RETENTION_DAYS;
- Batch API files past their expires_at, and ended batches older than SPOOL_JOB_RETENTION_DAYS
  with their lines (jobs/batches/retention.py).

Rows go by primary key, BATCH at a time, each batch one statement in its own transaction, so no
lock is held for longer than one batch (docs/RETENTION.md measures it at 1,000,000 jobs). Each
batch is found by walking the (created_at, id) index from where the last one ended, so rows that
stay are passed over once per run instead of being read again by every batch. The same deletes
serve the erasure of one user (jobs/erasure.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from jobs import chunklog, rollup
from jobs.batches import retention as batch_retention
from jobs.models import Job, Room, RoomMessage, StoredCompletion, StoredResponse
from jobs.periodic import start_periodic
from jobs.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)

# Rows per DELETE. At 1,000,000 jobs the rate is the same from 1,000 to 20,000 rows a batch (the
# cost is per row, most of it the foreign-key checks of the four tables that point at jobs), but
# the longest DELETE grows with the batch: ~0.35 s at 1,000, ~1.6 s at 5,000 on a loaded machine
# (docs/RETENTION.md). The rows themselves nobody writes; a batch's locks stop DDL, and whatever
# queues behind a waiting migration, so a batch should stay well under a second.
BATCH = 1000
# The advisory lock one worker holds while it purges, so the others skip that round.
LOCK_KEY = 0x53504F4F4C5254  # "SPOOLRT"

# (what, rows, seconds): told of each DELETE, for the command's report and the benchmark.
Observer = Callable[[str, int, float], None]

JOBS = Job._meta.db_table
_UNSTORED = (
    f"NOT EXISTS (SELECT 1 FROM {StoredCompletion._meta.db_table} s WHERE s.job_id = t.id)"
    f" AND NOT EXISTS (SELECT 1 FROM {StoredResponse._meta.db_table} r WHERE r.job_id = t.id)"
)
_ENDED = "t.status IN (" + ", ".join(f"'{status}'" for status in sorted(Job.TERMINAL)) + ")"
# The links to a job from a room message or a delivery are dropped (Django's SET_NULL, done here
# in the same statement); the row lock of each deleted job is all that is held, for one batch.
_DELETE_JOBS = f"""
WITH doomed AS (SELECT t.id FROM {JOBS} t WHERE t.id = ANY(%s) AND {_UNSTORED}),
messages AS (
    UPDATE {RoomMessage._meta.db_table} SET job_id = NULL WHERE job_id IN (SELECT id FROM doomed)
),
deliveries AS (
    UPDATE {WebhookDelivery._meta.db_table} SET job_id = NULL WHERE job_id IN (SELECT id FROM doomed)
)
DELETE FROM {JOBS} WHERE id IN (SELECT id FROM doomed)
"""
_DELETE_DELIVERIES = f"""
WITH attempts AS (DELETE FROM {WebhookAttempt._meta.db_table} WHERE delivery_id = ANY(%s))
DELETE FROM {WebhookDelivery._meta.db_table} WHERE id = ANY(%s)
"""
_DELETE_ROOMS = f"""
WITH messages AS (DELETE FROM {RoomMessage._meta.db_table} WHERE room_id = ANY(%s)),
jobs AS (UPDATE {JOBS} SET room_id = NULL WHERE room_id = ANY(%s))
DELETE FROM {Room._meta.db_table} WHERE id = ANY(%s)
"""


def windows(
    table: str, *, where: str, params: Sequence[Any], batch: int = BATCH, flag: str = "true"
) -> Iterator[list[Any]]:
    """The ids of the rows of `table` (alias t) matching `where`, a window of `batch` rows at a
    time in (created_at, id) order, keeping those for which `flag` holds."""
    last: tuple[Any, Any] | None = None
    while True:
        after = " AND (t.created_at, t.id) > (%s, %s)" if last else ""
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT t.id, t.created_at, {flag} FROM {table} t WHERE {where}{after}"
                " ORDER BY t.created_at, t.id LIMIT %s",
                [*params, *(last or ()), batch],
            )
            rows = cursor.fetchall()
        if rows:
            yield [row[0] for row in rows if row[2]]
        if len(rows) < batch:
            return
        last = (rows[-1][1], rows[-1][0])


def _execute(what: str, sql: str, params: Sequence[Any], observe: Observer | None) -> int:
    started = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        deleted = cursor.rowcount
    if observe is not None:
        observe(what, deleted, time.monotonic() - started)
    return deleted


def _live(job_ids: Sequence[Any]) -> list[str]:
    """Those of the jobs whose Redis keys may still be there. A job's keys expire
    CHUNK_LOG_TTL_SECONDS after its last write, which follows its end by moments (a reader of an
    ended job refreshes only its cursor, a number): asking Redis about the rest took a quarter
    of the purge's time at 1,000,000 jobs (docs/RETENTION.md)."""
    since = timezone.now() - timedelta(seconds=settings.SPOOL.redis.chunk_log_ttl_seconds + 60)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {JOBS} WHERE id = ANY(%s) AND (finished_at IS NULL OR finished_at > %s)",
            [list(job_ids), since],
        )
        return [str(row[0]) for row in cursor.fetchall()]


def observed(observe: Observer | None) -> Callable[[str, str, Sequence[Any]], int]:
    def execute(what: str, sql: str, params: Sequence[Any]) -> int:
        return _execute(what, sql, params, observe)

    return execute


def delete_jobs(job_ids: Sequence[Any], observe: Observer | None = None) -> int:
    """Delete these jobs, but not one that backs a stored completion or response: their Redis
    keys first (a failure there leaves the rows for the next run to find), then the rows."""
    if not job_ids:
        return 0
    chunklog.delete_jobs(_live(job_ids))
    return _execute("jobs", _DELETE_JOBS, [list(job_ids)], observe)


def delete_deliveries(delivery_ids: Sequence[Any], observe: Observer | None = None) -> int:
    if not delivery_ids:
        return 0
    ids = list(delivery_ids)
    return _execute("webhook deliveries", _DELETE_DELIVERIES, [ids, ids], observe)


def delete_rooms(room_ids: Sequence[Any], observe: Observer | None = None) -> int:
    if not room_ids:
        return 0
    ids = list(room_ids)
    return _execute("rooms", _DELETE_ROOMS, [ids, ids, ids], observe)


def delete_rows(table: str, ids: Sequence[Any], observe: Observer | None = None) -> int:
    """Rows nothing else points to (stored completions, stored responses) by primary key."""
    if not ids:
        return 0
    return _execute(table, f"DELETE FROM {table} WHERE id = ANY(%s)", [list(ids)], observe)


def _cutoff(now: datetime, days: int) -> datetime | None:
    return now - timedelta(days=days) if days > 0 else None


def purge_jobs(*, now: datetime, batch: int = BATCH, observe: Observer | None = None) -> int:
    cutoff = _cutoff(now, settings.SPOOL.retention.job_days)
    if cutoff is None:
        return 0
    return sum(
        delete_jobs(ids, observe)
        for ids in windows(
            JOBS, where="t.created_at < %s", params=[cutoff], batch=batch, flag=f"{_ENDED} AND {_UNSTORED}"
        )
    )


def purge_deliveries(*, now: datetime, batch: int = BATCH, observe: Observer | None = None) -> int:
    """Walked per endpoint, along the (endpoint, created_at, id) index the delivery log reads."""
    cutoff = _cutoff(now, settings.SPOOL.retention.webhook_delivery_days)
    if cutoff is None:
        return 0
    deleted = 0
    for endpoint_id in list(WebhookEndpoint.objects.values_list("id", flat=True)):
        for ids in windows(
            WebhookDelivery._meta.db_table,
            where="t.endpoint_id = %s AND t.created_at < %s",
            params=[endpoint_id, cutoff],
            batch=batch,
            flag=f"t.status <> '{WebhookDelivery.Status.PENDING}'",
        ):
            deleted += delete_deliveries(ids, observe)
    return deleted


def purge_responses(*, now: datetime, batch: int = BATCH, observe: Observer | None = None) -> int:
    cutoff = _cutoff(now, settings.SPOOL.retention.responses_days)
    if cutoff is None:
        return 0
    table = StoredResponse._meta.db_table
    return sum(
        delete_rows(table, ids, observe)
        for ids in windows(table, where="t.created_at < %s", params=[cutoff], batch=batch)
    )


def purge(
    *, now: datetime | None = None, batch: int = BATCH, observe: Observer | None = None
) -> dict[str, int]:
    """Delete everything past its retention; how many of each went. Stored responses go first,
    so that their jobs, when old enough, go in the same run."""
    now = now or timezone.now()
    execute = observed(observe)
    return {
        "stored responses": purge_responses(now=now, batch=batch, observe=observe),
        "jobs": purge_jobs(now=now, batch=batch, observe=observe),
        "webhook deliveries": purge_deliveries(now=now, batch=batch, observe=observe),
        "rollup rows": rollup.prune(now=now),
        "files": batch_retention.purge_files(now=now, windows=windows, execute=execute, batch=batch),
        "batches": batch_retention.purge_batches(now=now, windows=windows, execute=execute),
    }


def purge_if_first() -> dict[str, int] | None:
    """purge(), unless another process is at it (then None): a session advisory lock, released
    at the end, or by Postgres if this process dies."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
        (locked,) = cursor.fetchone() or (False,)
    if not locked:
        return None
    try:
        return purge()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])


def start_background_retention() -> threading.Thread | None:
    """A daemon thread in each worker process that purges every SPOOL_RETENTION_EVERY_SECONDS
    (none when that is 0: cron runs `manage.py spool_purge` instead)."""
    if settings.SPOOL.retention.every_seconds <= 0:
        return None

    def purge_and_say() -> None:
        done = purge_if_first()
        if done and any(done.values()):
            log.info("retention: deleted %s", done)

    return start_periodic("spool-retention", purge_and_say, lambda: settings.SPOOL.retention.every_seconds)
