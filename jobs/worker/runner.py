"""Runs one job on the worker's event loop: reads and claims it on the loop's own Postgres
connections (jobs.worker.database), streams the generation, ends it in Postgres, then appends
the log's end, without a thread hop on the way. On an engine without limits the generation
starts as soon as the job is read, while its claim commits; nothing of it reaches Redis before
the claim is in. Work that has only a sync form runs on a thread, and only for the jobs that
need it: a limited engine's admission, a fallback, and an end whose transaction also writes
webhook events.

Order at the end matters: the final result is committed to Postgres before the terminal chunk
is appended, so a reader that sees the terminal chunk can always read the result.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import redis
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from engine.types import FINISH, ChunkDict, GenerationRequest
from jobs import lifecycle, metrics, tracing
from jobs.models import Job
from jobs.placement import DEFAULT, run_seconds
from jobs.scheduling import admission, deployments, fallback, leases
from jobs.scheduling.estimate import used_tokens
from jobs.types import JobResult
from jobs.webhooks import events as webhook_events
from jobs.webhooks.delivery import send_first_attempts
from jobs.worker import database, runtime, statements
from jobs.worker.generation import Generation
from jobs.worker.writer import writer

log = logging.getLogger(__name__)
T = TypeVar("T")


def _release_connection() -> None:
    # Never inside a caller's transaction (tests run the runner inside one).
    if not connection.in_atomic_block:
        connection.close()


async def _in_thread(action: Callable[..., T], *args: Any) -> T:
    """Sync (ORM, Redis) work of a job, off the loop; the thread's connection goes back after."""

    def work() -> T:
        try:
            return action(*args)
        finally:
            _release_connection()

    return await asyncio.to_thread(work)


def _status_of(terminal: ChunkDict) -> str:
    if terminal["type"] == FINISH:
        return Job.Status.SUCCEEDED
    if terminal["data"].get("code") == "cancelled":
        return Job.Status.CANCELLED
    return Job.Status.FAILED


def job_run(*, job_id: str) -> None:
    """The job's task: on the loop itself under jobs.worker.pool, else handed to it."""
    runtime.wait(run(job_id))


async def run(job_id: str) -> None:
    # One claim time for every attempt: an attempt whose answer was lost claimed it at this time.
    claimed_at = timezone.now()
    # An idle loop starts an unlimited engine's job while its claim commits (_run_claiming); a
    # busy one claims first, in one statement: there the overlap gained nothing and cost a
    # statement a job and the batching of first chunks (docs/PERFORMANCE.md, "Issue 29 (12)").
    overlap = writer().idle
    claim = statements.read_to_claim if overlap else statements.claim
    job = await _retry_on_loop(lambda: claim(job_id, claimed_at), "Postgres")
    if job is None:
        _skipped(job_id)
        return
    # Nobody streams a Batch API line: its chunks wake no reader.
    generation = Generation(job_id, GenerationRequest.from_dict(job.request), quiet="batch" in job.options)
    if overlap and not job.engine.is_limited and not _waited_too_long(job):
        if not await _run_claiming(job, claimed_at, generation, _built_or_error(job.engine.built)):
            _skipped(job_id)
            return
        await _end(job, generation)
        return
    if overlap and not await _retry_on_loop(lambda: statements.mark_claimed(job_id, claimed_at), "Postgres"):
        _skipped(job_id)
        return
    if _waited_too_long(job):
        generation.terminal = lifecycle.error_chunk("expired", admission.EXPIRED_MESSAGE)
        await _finish(job, generation)
    elif not job.engine.is_limited:
        _started(job)
        await _run(job, generation, _built_or_error(job.engine.built))
        await _end(job, generation)
        return
    else:
        engine = job.engine  # the job may move to its fallback: the slot is this one's
        taken = await _in_thread(_retry_while_down, lambda: admission.take(engine, job_id), "Redis")
        if not taken.run:
            # Its slot went to another job while its message was on the way: it waits again.
            await _in_thread(_retry_while_down, lambda: statements.unclaim(job_id), "Postgres")
            log.info("job %s: its engine has no slot for it now; it waits in the engine's queue", job_id)
            return
        with leases.holding(engine, job_id):
            built = await _in_thread(_built_or_error, lambda: deployments.built(engine, taken.deployment))
            _started(job)
            await _run(job, generation, built)
            failed_early = _failed_before_output(generation)
            # Its deployments may be read from Postgres: sync work, on a thread.
            if failed_early and await _in_thread(admission.another_deployment_left, engine, taken):
                # Queued again before it is offered again: a worker that took it at once must
                # find it queued to claim it.
                await _in_thread(_retry_while_down, lambda: statements.unclaim(job_id), "Postgres")
                await _in_thread(
                    _retry_while_down, lambda: admission.try_elsewhere(engine, job, taken), "Redis"
                )
                return
            moved = failed_early and await _in_thread(fallback.take_over, job)
        # The slot goes back as soon as the upstream is done with the job, before the commit:
        # it stands for a request to the upstream, and the next job's start (publish, claim)
        # then overlaps this one's commit (bench.scheduler: ~25 ms of each 0.33 s slot).
        used = used_tokens(generation.usage or lifecycle.estimated_usage(generation.written))
        await _in_thread(_retry_while_down, lambda: admission.release(engine, job_id, used), "Redis")
        if not moved:
            await _finish(job, generation)
        return
    if job.engine.is_limited:  # expired when a worker took it: its slot, if it had one
        await _in_thread(_retry_while_down, lambda: admission.release(job.engine, job_id, None), "Redis")


async def _end(job: Job, generation: Generation) -> None:
    """An unlimited engine's job after its generation: to its fallback, or finished."""
    if not (_failed_before_output(generation) and await _in_thread(fallback.take_over, job)):
        await _finish(job, generation)


def _skipped(job_id: str) -> None:
    # Cancelled while queued, or taken by an earlier delivery of the task: the Redis broker
    # delivers a message again once it has been unacknowledged past its visibility timeout,
    # also while its first delivery is still running. Logged, so a test can count them.
    log.info("job %s: not queued any more (cancelled, or run by an earlier delivery); skipped", job_id)


async def _run_claiming(job: Job, claimed_at: datetime, generation: Generation, engine: Any) -> bool:
    """Runs the generation while the job's claim commits: the upstream's request goes out
    alongside the claim's round trip and WAL flush (~2 ms at one stream, docs/PERFORMANCE.md
    "Issue 29 (12)") instead of after them. Nothing of the job goes to Redis until the claim is
    in: its first chunk is kept, and the rest waits in the upstream's connection. False when
    the claim found the job cancelled or taken meanwhile: the generation is stopped (its
    upstream request closed) with nothing written."""
    generation.log.released.clear()
    running = asyncio.ensure_future(_run(job, generation, engine))
    claimed = False
    try:
        claimed = await _retry_on_loop(lambda: statements.mark_claimed(str(job.pk), claimed_at), "Postgres")
    finally:
        if not claimed:  # or the claim raised
            generation.stop()
            await asyncio.gather(running, return_exceptions=True)
    if not claimed:
        return False
    _started(job)
    writer().release(generation.log)
    await running
    return True


def _waited_too_long(job: Job) -> bool:
    """Past its queue deadline when a worker took it (a backlog of the workers' queue: a
    limited engine's queue expires its own waiting jobs before they are sent)."""
    deadline = job.options.get("queue_deadline")
    return bool(deadline) and job.started_at is not None and job.started_at.timestamp() > deadline


def _failed_before_output(generation: Generation) -> bool:
    """The upstream failed (connection, 5xx, timeout) before the job's first chunk: nothing was
    written, so another deployment can run it from the start."""
    terminal = generation.terminal
    return (
        generation.first_chunk_at is None
        and terminal is not None
        and terminal["data"].get("code") in ("upstream_error", "upstream_timeout")
    )


def _built_or_error(build: Callable[[], Any]) -> Any:
    """The engine object, or what its building raised (the job then ends on it)."""
    try:
        return build()
    except Exception as exc:
        return exc


def _started(job: Job) -> None:
    """The job's start, once claimed, in metrics and traces."""
    metrics.job_started(engine=job.engine.name)
    if job.started_at is not None:
        tracing.record_span(
            "spool.queue_wait", job.created_at, job.started_at, **{"spool.job_id": str(job.pk)}
        )
        metrics.queue_waited(
            engine=job.engine.name,
            priority=job.options.get("priority", DEFAULT),
            seconds=metrics.seconds_between(job.created_at, job.started_at),
        )


async def _run(job: Job, generation: Generation, engine: Any) -> None:
    if isinstance(engine, Exception):
        generation.terminal = lifecycle.error_chunk(
            "engine_unavailable", f"Engine {job.engine.name!r}: {engine}"
        )
        return
    token = admission.running_on.set(job.engine)
    try:
        # The upstream call is a child of this span, and the retry listener knows the job's engine.
        with tracing.span("spool.generation", **{"spool.engine": job.engine.name}):
            await generation.run(engine, run_seconds(job.options))
    finally:
        admission.running_on.reset(token)
    if job.started_at is not None and generation.first_chunk_at is not None:
        tracing.record_span("spool.first_chunk", job.started_at, generation.first_chunk_at)


async def _finish(job: Job, generation: Generation) -> None:
    usage_chunk, terminal = generation.ending()
    # Set once for every attempt: an attempt whose answer was lost ended the job at this time.
    job.finished_at = timezone.now()
    job.status = _status_of(terminal)
    job.first_chunk_at = generation.first_chunk_at
    ended, message = _ending(job, generation, usage_chunk, terminal, generation.result())
    webhooks: list[str] = []  # the owner's webhook events, sent after the log's end
    with tracing.span("spool.commit"):
        updated = await _commit(job, ended, message, webhooks)
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
    if not await generation.close_log([usage_chunk, terminal], OUTAGE_PATIENCE_SECONDS):
        log.error("job %s ended but Redis is still down; readers will get it from Postgres", job.pk)
    if webhooks:
        await _in_thread(send_first_attempts, webhooks)


def _ending(
    job: Job, generation: Generation, usage_chunk: ChunkDict, terminal: ChunkDict, result: JobResult
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """What the job's end sets on its row, and the room's assistant message (only when the job
    succeeded)."""
    first = result["choices"][0]
    message: dict[str, Any] | None = None
    if job.status == Job.Status.SUCCEEDED:
        message = {"content": first["content"], "tool_calls": first["tool_calls"] or None}
    ended = {
        "status": job.status,
        "finished_at": job.finished_at,
        "first_chunk_at": job.first_chunk_at,
        "finish_reason": terminal["data"].get("finish_reason") or terminal["data"].get("code", ""),
        "usage": generation.usage,
        "error": "" if terminal["type"] == FINISH else terminal["data"]["message"],
        "result": result,
        "chunks": [*generation.written, usage_chunk, terminal],
    }
    return ended, message


async def _commit(
    job: Job, ended: dict[str, Any], message: dict[str, Any] | None, webhooks: list[str]
) -> bool:
    """End the job in Postgres (False: another path ended it first); the webhook deliveries it
    committed are added to `webhooks`. On the loop, in one autocommitted statement with what the
    end keeps (a stored response or completion), unless the owner has an enabled webhook
    endpoint: then on Django's connection in a thread, in one transaction with the events."""
    # The job as its end makes it, so what it keeps is built from it without reading it back.
    for name, value in ended.items():
        setattr(job, name, value)
    kept = lifecycle.kept(job)
    done, wants_events = await _retry_on_loop(
        lambda: statements.end_alone(job, ended, message, kept), "Postgres"
    )
    if done:
        return True
    if not wants_events:
        # Ended by the sweeper or a cancel; or by an earlier attempt of this end whose answer
        # was lost (its stored row with it), whose job is this worker's to close.
        return await _retry_on_loop(lambda: statements.ended_as(job), "Postgres")
    commit = lambda: _commit_keeping(job, ended, message, kept, webhooks)  # noqa: E731
    return await _in_thread(_retry_while_down, commit, "Postgres")


def _commit_keeping(
    job: Job,
    ended: dict[str, Any],
    message: dict[str, Any] | None,
    kept: lifecycle.Kept | None,
    webhooks: list[str],
) -> bool:
    """The end of a job whose owner has an enabled webhook endpoint: its row, what it keeps
    (`kept`) and its webhook events in one transaction on Django's connection."""
    with webhook_events.sends_held() as held, transaction.atomic():
        wants_events = statements.end_with(job, ended, message)
        if wants_events is None:
            return Job.objects.filter(pk=job.pk, status=job.status, finished_at=job.finished_at).exists()
        lifecycle.ended(job, wants_events=wants_events, built=kept)
    webhooks += held
    return True


# How long a finished job keeps trying to reach Postgres or Redis before giving up on it.
OUTAGE_PATIENCE_SECONDS = 120.0


def _pauses() -> Any:
    """The pauses between tries of an action while Postgres or Redis is down, until patience
    runs out."""
    deadline = time.monotonic() + OUTAGE_PATIENCE_SECONDS
    pause = 0.2
    while time.monotonic() + pause <= deadline:
        yield pause
        pause = min(pause * 2, 5.0)


def _down(exc: Exception, what: str, pause: float) -> None:
    metrics.backend_error("redis" if isinstance(exc, redis.RedisError) else "postgres")
    log.warning("%s unavailable (%s); retrying in %.1f s", what, exc, pause)


async def _retry_on_loop(action: Callable[[], Awaitable[T]], what: str) -> T:
    """Await action, retrying with backoff while Postgres (the loop's connections) or Redis is
    unreachable."""
    pauses = _pauses()
    while True:
        try:
            return await action()
        except (*database.DOWN, redis.RedisError) as exc:
            pause = next(pauses, None)
            if pause is None:
                raise
            _down(exc, what, pause)
            if not isinstance(exc, redis.RedisError):
                # What broke this connection broke the pool's idle ones too.
                await database.check()
            await asyncio.sleep(pause)


def _retry_while_down(action: Callable[[], T], what: str) -> T:
    """Run action (on a thread), retrying with backoff while the database or Redis is
    unreachable."""
    pauses = _pauses()
    while True:
        try:
            return action()
        except (OperationalError, InterfaceError, redis.RedisError) as exc:
            pause = next(pauses, None)
            if pause is None:
                raise
            _down(exc, what, pause)
            _release_connection()
            pool = getattr(connection, "pool", None)  # psycopg_pool's, on Postgres
            if pool is not None and not isinstance(exc, redis.RedisError):
                # What broke this connection broke the pool's idle ones too: tested all at once
                # here, not met one per retry at growing pauses, by this and every other thread.
                pool.check()
            time.sleep(pause)
