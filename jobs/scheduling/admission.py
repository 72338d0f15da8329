"""Admission to a limited engine: its waiting jobs, its leases and its rate buckets in Redis, each
decision one script (admission.lua) under the engine's hash tag, so it holds across every web and
worker process and on a Redis Cluster. Celery carries only admitted jobs; an engine with no limit
is never seen here (job_create sends its jobs straight to the workers).

The callers: job creation (`submit`), the worker (`take` before it claims a job, `release` when
the job ended), the sweeper (`tick`: deadlines, and the slots of dead workers), the upstream
retry listener (`hold` on a 429 with Retry-After), and the faces and admin (`status`). Each
call that frees or adds work admits what now fits and hands it to Celery; what expired while
waiting is ended here through the lifecycle; a rate limit or hold schedules one delayed
admission for when it allows again: a freed slot wakes the next job, never a poll."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings

from jobs import lifecycle, metrics, queueing
from jobs.chunklog import Lua, wake_channel
from jobs.models import Engine, Job
from jobs.placement import CLASSES, DEFAULT
from jobs.redis_clients import sync_redis
from jobs.scheduling import deployments
from jobs.scheduling.estimate import estimated_tokens

log = logging.getLogger(__name__)

# The engine of the generation running in this context (a worker sets it; the loop's task copies
# it), so the upstream's retry listener knows which engine a 429 came from.
running_on: contextvars.ContextVar[Engine | None] = contextvars.ContextVar("spool_running_on", default=None)

_SCRIPT = Lua((Path(__file__).parent / "admission.lua").read_text())
EXPIRED_MESSAGE = "The job waited past its queue timeout without starting."
# Tickets of work answered inside a request (jobs/scheduling/inline.py), not jobs: admitted, the
# waiting request is woken instead of a worker being sent anything.
INLINE_PREFIX = "inline:"


@dataclass(frozen=True, slots=True)
class Ticket:
    """What the scheduler keeps of a waiting job."""

    job_id: str
    priority: str
    tenant: str  # the owner's id
    weight: int
    tokens: int  # estimated: prompt and max output tokens
    deadline: float | None  # epoch seconds

    def encoded(self) -> bytes:
        deadline_ms = int(self.deadline * 1000) if self.deadline else 0
        return orjson.dumps(
            {
                "c": self.priority,
                "t": self.tenant,
                "w": self.weight,
                "k": self.tokens,
                "d": deadline_ms,
                "s": "w",
            }
        )


def ticket_of(job: Job, weight: int = 1) -> Ticket:
    """What the engine's queue keeps of the job. A job sent back goes first in its owner's
    queue, where the weight does not matter: 1."""
    return Ticket(
        job_id=str(job.pk),
        priority=job.options.get("priority", DEFAULT),
        tenant=str(job.owner_id),
        weight=weight,
        tokens=estimated_tokens(job.request),
        deadline=job.options.get("queue_deadline"),
    )


@dataclass(frozen=True, slots=True)
class QueueStatus:
    state: str  # waiting, admitted, running, or "" (not known to the scheduler)
    priority: str
    reason: str  # why admissions last stopped: engine_full, rate_limited, held, or ""
    ahead: int | None  # jobs ahead of it in its owner's queue of its class
    running: int  # slots in use
    waiting: dict[str, int]  # per class


_STATES = {"w": "waiting", "a": "admitted", "r": "running"}


def _prefix(engine_id: Any) -> str:
    return f"{settings.SPOOL.redis.prefix}:sched:{{{engine_id}}}"


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _call(engine: Engine, op: str, *args: Any) -> Any:
    head = (
        int(time.time() * 1000),
        engine.max_concurrency or 0,
        engine.requests_per_minute or 0,
        engine.tokens_per_minute or 0,
        _ms(settings.SPOOL.scheduling.admission_lease_seconds),
        deployments.spec(engine),
        op,
    )
    return _SCRIPT.run(sync_redis(), [_prefix(engine.pk)], [*head, *args])


def _decoded(ids: list[bytes]) -> list[str]:
    return [i.decode() for i in ids]


def _act(engine: Engine, admitted: list[bytes], expired: list[bytes], timer_ms: int) -> None:
    """Send what was admitted, end what expired, schedule the delayed admission."""
    for job_id in _decoded(admitted):
        if job_id.startswith(INLINE_PREFIX):
            sync_redis().spublish(wake_channel(job_id), b"admitted")
        else:
            queueing.send_job(job_id)
    if admitted:
        metrics.jobs_admitted(engine=engine.name, count=len(admitted))
    for job_id in _decoded(expired):
        if not job_id.startswith(INLINE_PREFIX):  # an inline request expires by its own clock
            expire(engine, job_id)
    if timer_ms:
        queueing.send_admission(str(engine.pk), countdown=timer_ms / 1000)


def send_again(job: Job) -> None:
    """A queued job whose message or submission was lost, or whose worker died before any
    output: to the workers again, through its engine's queue (first in its owner's) if limited."""
    if job.engine.is_limited:
        submit(job.engine, ticket_of(job), first=True)
    else:
        queueing.send_job(str(job.pk))


def submit(engine: Engine, ticket: Ticket, *, first: bool = False) -> None:
    """The job waits for its engine's capacity; starts now if there is some. `first`: ahead of
    its owner's other waiting jobs (a job sent back, not a new one)."""
    admitted, expired, timer = _call(
        engine, "enqueue", ticket.job_id, ticket.encoded(), "1" if first else "0"
    )
    _act(engine, admitted, expired, timer)


def admit(engine: Engine) -> None:
    _act(engine, *_call(engine, "admit"))


@dataclass(frozen=True, slots=True)
class Taken:
    run: bool  # False: the job waits again (its slot went to another while it was on its way)
    deployment: str  # the deployment it was placed on; "" when the engine has none
    tries: int  # how many deployments failed it before its first chunk already


def take(engine: Engine, job_id: str) -> Taken:
    """Whether the worker that got the job's message may run it now (its slot is leased to it
    for SPOOL_LEASE_SECONDS, renewed by jobs.scheduling.leases), and where."""
    run, admitted, expired, timer, deployment, tries = _call(
        engine, "take", job_id, _ms(settings.SPOOL.scheduling.lease_seconds)
    )
    _act(engine, admitted, expired, timer)
    return Taken(bool(run), deployment.decode(), int(tries))


def another_deployment_left(engine: Engine, taken: Taken) -> bool:
    """Whether a job that failed on its deployment before its first chunk has another to try
    (else it ends with the failure, as on one server)."""
    return bool(taken.deployment) and taken.tries + 1 < len(deployments.active(engine))


def try_elsewhere(engine: Engine, job: Job, taken: Taken) -> None:
    """Cool the job's deployment down and put the job back, first in its owner's queue, for
    another deployment (the job's row is queued again already)."""
    log.warning(
        "job %s: deployment %s failed before the first chunk; trying another", job.pk, taken.deployment
    )
    metrics.deployment_cooled(engine=engine.name)
    _call(engine, "cool", taken.deployment, _ms(deployments.cooldown_seconds()))
    submit(engine, ticket_of(job), first=True)


def release(engine: Engine, job_id: str, tokens_used: int | None) -> None:
    """The job ended (or left the queue): its slot goes to the next waiting job."""
    used = -1 if tokens_used is None else tokens_used
    _act(engine, *_call(engine, "release", job_id, used))


def renew(engine: Engine, job_ids: list[str]) -> None:
    _call(engine, "renew", _ms(settings.SPOOL.scheduling.lease_seconds), *job_ids)


def tick(engine: Engine) -> None:
    """The sweeper's, every few seconds: what waited past its deadline expires, and the slots of
    dead workers (their leases ran out; no release woke anyone) go to waiting jobs."""
    _act(engine, *_call(engine, "tick"))


def limits_changed(engine: Engine) -> None:
    """After an engine's limits or deployments changed: a raised limit starts what now fits at
    once; an engine left without any sends every job still waiting to the workers (nothing
    would admit them otherwise until the sweeper found them lost)."""
    if engine.is_limited:
        admit(engine)
        return
    for job_id in _decoded(_call(engine, "drain")):
        if not job_id.startswith(INLINE_PREFIX):
            queueing.send_job(job_id)


def unknown(engine: Engine, job_ids: list[str]) -> list[str]:
    """Of these queued jobs, those the engine's queue does not hold: their submission was lost
    (the web process died between the commit and the submit, or Redis lost its state)."""
    return _decoded(_call(engine, "unknown", *job_ids)) if job_ids else []


def hold(engine: Engine, seconds: float) -> None:
    """An upstream answered 429 with Retry-After: no job starts on the engine until then."""
    metrics.engine_held(engine=engine.name)
    _act(engine, *_call(engine, "hold", _ms(seconds)))


def status(engine: Engine, job_id: str = "") -> QueueStatus:
    state, priority, reason, ahead, running, waiting = _call(engine, "status", job_id)
    return QueueStatus(
        state=_STATES.get(state.decode(), ""),
        priority=priority.decode(),
        reason=reason.decode(),
        ahead=None if ahead < 0 else int(ahead),
        running=int(running),
        waiting=dict(zip(CLASSES, (int(n) for n in waiting), strict=True)),
    )


def expire(engine: Engine, job_id: str) -> None:
    """A job that waited past its deadline ends `expired`, as every face shows it."""
    if lifecycle.end_queued(job_id, Job.Status.FAILED, "expired", EXPIRED_MESSAGE):
        metrics.job_expired(engine=engine.name)
        log.info("job %s expired before it started", job_id)


def upstream_retried(code: str, retry_after: float | None) -> None:
    """engine.upstream's retry listener in a worker (on its event loop): counts the retry, and a
    429 with Retry-After from a limited engine holds that engine's admissions, in a thread, so
    the loop's other generations do not wait on Redis."""
    metrics.upstream_retry(code)
    engine = running_on.get()
    if code == "429" and retry_after and engine is not None and engine.is_limited:
        asyncio.get_running_loop().run_in_executor(None, hold, engine, retry_after)
