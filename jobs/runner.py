"""Runs one job: the engine's chunks go to the Redis log as they come; the end goes to Postgres.

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

from engine.types import CONTENT, ERROR, FINISH, USAGE, Chunk, EngineError, GenerationRequest
from jobs import chunklog
from jobs.completions import completion_store
from jobs.models import Job, RoomMessage
from jobs.pump import END, EnginePump
from jobs.results import ResultBuilder

log = logging.getLogger(__name__)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"type": ERROR, "data": {"code": code, "message": message}}


class _Generation:
    """The engine loop for one job, kept apart from the database so no connection is held."""

    def __init__(self, job_id: str, request: GenerationRequest) -> None:
        self.job_id = job_id
        self.request = request
        self.written: list[dict[str, Any]] = []
        self.unflushed: list[dict[str, Any]] = []
        self.builder = ResultBuilder(request.n)
        self.finish_reasons: list[str | None] = [None] * request.n
        self.usage: dict[str, Any] | None = None
        self.first_chunk_at = None
        self.terminal: dict[str, Any] | None = None

    def run(self, engine: Any) -> None:
        try:
            engine.check(self.request)
        except EngineError as exc:
            self.terminal = _error(exc.code, str(exc))
            return
        deadline = time.monotonic() + settings.SPOOL_JOB_MAX_SECONDS
        pump = EnginePump(lambda: engine.stream(self.request), name=f"engine-{self.job_id}")
        chunklog.append(self.job_id, [])  # the first heartbeat, before the engine says anything
        try:
            while self.terminal is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    limit = settings.SPOOL_JOB_MAX_SECONDS
                    self.terminal = _error("timeout", f"The job ran past its limit of {limit:g} s.")
                    return
                batch = pump.next_batch(timeout=min(chunklog.HEARTBEAT_SECONDS, remaining))
                self._write(batch)
        finally:
            pump.stop()

    def _write(self, batch: list[Any]) -> None:
        """Log a batch in one round trip (an empty one just beats the heart), then act on how
        it ended: the engine finished, failed, or someone asked to cancel."""
        raws = []
        ended: Any = None
        for item in batch:
            if item is END or isinstance(item, BaseException):
                ended = item
                break
            raw = self._take(item)
            if raw is not None:
                raws.append(raw)
        if raws and self.first_chunk_at is None:
            self.first_chunk_at = timezone.now()
        if self.flush(raws):
            self.terminal = _error("cancelled", "The job was cancelled.")
        elif isinstance(ended, EngineError):
            self.terminal = _error(ended.code, str(ended))
        elif isinstance(ended, BaseException):  # an engine bug must still end the job
            log.error("engine failed on job %s", self.job_id, exc_info=ended)
            self.terminal = _error("engine_error", f"{type(ended).__name__}: {ended}")
        elif ended is END:
            self.terminal = self._natural_end()

    def flush(self, raws: list[dict[str, Any]]) -> bool:
        """Send raws, and any that an earlier flush could not send, to the log. True when a
        cancel was requested. While Redis is down the job keeps going and keeps its chunks
        here; Postgres gets the whole result at the end either way."""
        pending = self.unflushed + raws
        try:
            appended = chunklog.append(self.job_id, pending)
            if pending and appended.length != len(self.written):
                # Redis came back empty: put the whole log back, same sequence numbers.
                chunklog.rewrite(self.job_id, self.written)
        except redis.RedisError as exc:
            if not self.unflushed:
                log.warning(
                    "job %s: cannot write to Redis (%s); keeping chunks until it is back", self.job_id, exc
                )
            self.unflushed = pending
            return False
        self.unflushed = []
        return appended.cancelled

    def _take(self, chunk: Chunk) -> dict[str, Any] | None:
        """Fold one engine chunk into the result; the dict to log, or None for the per-choice
        finish and usage chunks, which the job's single ending replaces."""
        if chunk.type == FINISH:
            if chunk.choice < len(self.finish_reasons):
                self.finish_reasons[chunk.choice] = chunk.data["finish_reason"]
            return None
        if chunk.type == USAGE:
            self.usage = chunk.data
            return None
        raw = chunk.to_dict()
        self.written.append(raw)
        self.builder.add(raw)
        return raw

    def _natural_end(self) -> dict[str, Any]:
        if any(reason is None for reason in self.finish_reasons):
            return _error("engine_error", "The engine ended without a finish_reason.")
        data: dict[str, Any] = {"finish_reason": self.finish_reasons[0]}
        if self.request.n > 1:
            data["choices"] = self.finish_reasons
        return {"type": FINISH, "data": data}

    def ending(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(usage chunk, terminal chunk)."""
        if self.terminal is None:
            self.terminal = _error("engine_error", "The job stopped without an ending.")
        if self.usage is None:
            # The engine gave none (it failed early): count what was streamed, and say so.
            produced = sum(1 for c in self.written if c["type"] == CONTENT)
            self.usage = {"input_tokens": 0, "output_tokens": produced, "estimated": True}
        return {"type": USAGE, "data": self.usage}, self.terminal


def _release_connection() -> None:
    # Never inside a caller's transaction (tests run the runner inside one).
    if not connection.in_atomic_block:
        connection.close()


def _status_of(terminal: dict[str, Any]) -> str:
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
        return  # cancelled while queued, or already taken by another delivery of the task
    job = _retry_while_down(lambda: Job.objects.select_related("engine").get(id=job_id), "Postgres")
    request = GenerationRequest.from_dict(job.request)
    generation = _Generation(job_id, request)
    try:
        engine = job.engine.built()
    except Exception as exc:
        generation.terminal = _error("engine_unavailable", f"Engine {job.engine.name!r}: {exc}")
    else:
        _release_connection()  # a generation can take minutes; don't pin a connection meanwhile
        generation.run(engine)
    _finish(job, generation)


def _finish(job: Job, generation: _Generation) -> None:
    usage_chunk, terminal = generation.ending()
    result = generation.builder.build(generation.finish_reasons, generation.usage)
    updated = _retry_while_down(lambda: _commit(job, generation, usage_chunk, terminal, result), "Postgres")
    if updated:
        # Postgres has the result before the log shows the end: a reader that sees the
        # terminal chunk can always read the result.
        generation.written += [usage_chunk, terminal]
        generation.flush([usage_chunk, terminal])
        deadline = time.monotonic() + OUTAGE_PATIENCE_SECONDS
        while generation.unflushed and time.monotonic() < deadline:
            time.sleep(0.5)  # flush() keeps what Redis refused; readers meanwhile use Postgres
            generation.flush([])
        if generation.unflushed:
            log.error("job %s ended but Redis is still down; readers will get it from Postgres", job.pk)


def _commit(
    job: Job, generation: _Generation, usage_chunk: dict, terminal: dict, result: dict[str, Any]
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
            log.warning("%s unavailable (%s); retrying in %.1f s", what, exc, pause)
            _release_connection()
            time.sleep(pause)
            pause = min(pause * 2, 5.0)
