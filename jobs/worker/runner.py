"""Runs one job from a Celery task's thread: claims it and loads it from Postgres here, hands
the generation to the process's event loop and waits for it (costing no CPU), then commits the
result here. Postgres work never runs on the loop, so it never holds up other generations.

Order at the end matters: the final result is committed to Postgres before the terminal chunk
is appended, so a reader that sees the terminal chunk can always read the result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from engine.types import FINISH, ChunkDict, GenerationRequest
from jobs import metrics
from jobs.completions import completion_store
from jobs.models import Job, RoomMessage
from jobs.types import JobResult
from jobs.worker import runtime
from jobs.worker.generation import Generation, error_chunk

log = logging.getLogger(__name__)


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


def job_run(*, job_id: str) -> None:
    claimed = _retry_while_down(
        lambda: Job.objects.filter(id=job_id, status=Job.Status.QUEUED).update(
            status=Job.Status.RUNNING, started_at=timezone.now()
        ),
        "Postgres",
    )
    if not claimed:
        # Cancelled while queued, or taken by an earlier delivery of the task: the Redis broker
        # delivers a message again once it has been unacknowledged past its visibility timeout,
        # also while its first delivery is still running. Logged, so a test can count them.
        log.info("job %s: not queued any more (cancelled, or run by an earlier delivery); skipped", job_id)
        return
    job = _retry_while_down(lambda: Job.objects.select_related("engine").get(id=job_id), "Postgres")
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
    # Postgres has the result before the log shows the end: a reader that sees the terminal
    # chunk can always read the result.
    if not runtime.run(generation.close_log([usage_chunk, terminal], OUTAGE_PATIENCE_SECONDS)):
        log.error("job %s ended but Redis is still down; readers will get it from Postgres", job.pk)


def _commit(
    job: Job, generation: Generation, usage_chunk: ChunkDict, terminal: ChunkDict, result: JobResult
) -> bool:
    status = _status_of(terminal)
    with transaction.atomic():
        updated = Job.objects.filter(id=job.pk, status=Job.Status.RUNNING).update(
            status=status,
            finished_at=timezone.now(),
            first_chunk_at=generation.first_chunk_at,
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
            completion_store(job=job)
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
