"""Writes: keys, engines, rooms, jobs (create and cancel)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, ParamSpec

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from engine.types import GenerationRequest, UnsupportedParameter
from jobs import chunklog, idempotency, lifecycle, limits, metrics, queueing, tracing
from jobs.access import check_engine
from jobs.jobview import JobView, live_meta
from jobs.keys import hash_secret, new_key_pair
from jobs.logcontext import bind_job_id
from jobs.models import ApiKey, Engine, Job, Room, RoomMessage
from jobs.placement import BATCH, Placement, queue_options
from jobs.scheduling import admission

OFFLINE_ENGINE_NAME = "spool-offline"
P = ParamSpec("P")

log = logging.getLogger(__name__)


def user_ensure(*, username: str, staff: bool = False) -> User:
    user, _ = get_user_model().objects.get_or_create(
        username=username, defaults={"is_staff": staff, "is_superuser": staff}
    )
    return user


def key_create(
    *,
    owner: User,
    name: str = "",
    expires_at: datetime | None = None,
    engines: Sequence[str] = (),
    faces: Sequence[str] = (),
) -> tuple[ApiKey, str]:
    """Returns the key row and its secret; the secret is never stored and cannot be shown again.
    Empty `engines` or `faces`: every one."""
    access, secret = new_key_pair()
    key = ApiKey.objects.create(
        owner=owner,
        name=name,
        access_key=access,
        secret_hash=hash_secret(secret),
        expires_at=expires_at,
        engines=list(engines),
        faces=list(faces),
    )
    return key, secret


def key_revoke(*, key: ApiKey) -> bool:
    """Refused from now on by every web process within SPOOL_KEY_CACHE_SECONDS; False when it
    already was revoked (revoking twice keeps the first time)."""
    now = timezone.now()
    revoked = ApiKey.objects.filter(pk=key.pk, revoked_at=None).update(revoked_at=now) == 1
    if revoked:
        key.revoked_at = now
    return revoked


def key_set_expiry(*, key: ApiKey, expires_at: datetime | None) -> None:
    key.expires_at = expires_at
    key.save(update_fields=["expires_at"])


def key_limit(*, key: ApiKey, engines: Sequence[str] | None, faces: Sequence[str] | None) -> None:
    """Sets what is given (an empty list lifts that limit); None leaves it as it is."""
    fields: list[str] = []
    if engines is not None:
        key.engines, fields = list(engines), [*fields, "engines"]
    if faces is not None:
        key.faces, fields = list(faces), [*fields, "faces"]
    key.save(update_fields=fields)


def engine_ensure_offline() -> Engine:
    engine, _ = Engine.objects.update_or_create(
        name=OFFLINE_ENGINE_NAME,
        defaults={
            "kind": Engine.Kind.OFFLINE,
            "config": {"tokens_per_second": settings.SPOOL.engines.offline_tokens_per_second},
        },
    )
    return engine


def room_resolve(*, owner: User, room_id: str | None) -> Room:
    """The caller's room with that id, created on first use; another user's id is refused."""
    if room_id is None:
        return Room.objects.create(owner=owner)
    room, created = Room.objects.get_or_create(id=room_id, defaults={"owner": owner})
    if not created and room.owner_id != owner.pk:
        raise Room.DoesNotExist(room_id)
    return room


class JobRefused(Exception):
    """The engine cannot honour the request: `param` names what (a face may rename it as its
    request names it), `message` says why in the words every face uses. Faces answer it as a
    400 naming the parameter (jobs/faces/common/errors.problem); SEMOSS and Batch API lines in
    their own shapes."""

    def __init__(self, engine_name: str, param: str, reason: str) -> None:
        super().__init__(engine_name, param, reason)
        self.engine_name, self.param, self.reason = engine_name, param, reason

    @property
    def message(self) -> str:
        return f"Engine {self.engine_name!r} cannot honour '{self.param}': {self.reason}"

    def __str__(self) -> str:
        return self.message


def _job_make(
    *,
    owner: User,
    engine: Engine,
    request: GenerationRequest,
    options: dict[str, Any],
    face: str,
    room: Room | None = None,
    user_message: str | None = None,
    engines: frozenset[str] = frozenset(),
    placement: Placement | None = None,
    counted: bool = True,
) -> tuple[Job, bool]:
    """A queued job, sent to a worker once committed (through its engine's queue when the engine
    has limits). Raises EngineNotAllowed when `engines` (the calling key's, empty for every
    engine) leaves this one out, and JobRefused when the engine cannot honour the request, both
    before anything is written or counted, so the caller hears it now rather than in a failed
    job. `counted`: whether the owner's job limits (per minute, active)
    apply: not to a Batch API line, whose runner keeps its own bound on an owner's active lines
    (a batch of 10,000 lines would otherwise run at the per-minute limit and spend the owner's
    interactive budget).

    With an idempotency key, the job that key made (within a day) is returned as it is, and
    True with it (a replay); the same key with another request raises IdempotencyConflict."""
    check_engine(engines, engine)
    try:
        engine.built().check(request)
    except UnsupportedParameter as exc:
        raise JobRefused(engine.name, exc.param, str(exc)) from None
    placement = placement or Placement()
    options = {**options, **queue_options(placement)}
    key = placement.idempotency_key
    if not key and (room is None or user_message is None):
        # One row: its INSERT alone, autocommitted. A transaction around it would cost two more
        # round trips to Postgres (psycopg sends BEGIN, then COMMIT) on every create's path.
        return _job_write(owner, engine, request, options, face, room, placement, counted), False
    with transaction.atomic():
        fingerprint = (
            idempotency.fingerprint(engine, face, request, options, user_message, placement.basis)
            if key
            else ""
        )
        replayed = idempotency.replay(owner, key, fingerprint)
        if replayed is not None:
            return replayed, True
        job = _job_write(owner, engine, request, options, face, room, placement, counted)
        idempotency.remember(owner, key, fingerprint, job)
        if room is not None and user_message is not None:
            RoomMessage.objects.create(room=room, job=job, role="user", content=user_message)
        return job, False


def _job_write(
    owner: User,
    engine: Engine,
    request: GenerationRequest,
    options: dict[str, Any],
    face: str,
    room: Room | None,
    placement: Placement,
    counted: bool,
) -> Job:
    """The job's row, its live meta in Redis first, and its sending once the row is committed
    (at once when no transaction is open)."""
    if counted:
        limits.check_job_start(owner.pk)
    traceparent = tracing.current_traceparent()
    if traceparent:
        options = {**options, tracing.TRACEPARENT: traceparent}
    job = Job(owner=owner, engine=engine, room=room, face=face, request=request.to_dict(), options=options)
    # What a poll or a stream of this job needs while it is live, so that reading it touches
    # Redis only (selectors.job_for_owner). Written before the row: Redis away refuses the job
    # with nothing written in Postgres (a row would be sent by the sweeper, a job the client
    # was told failed); a row that then fails to be written leaves only this key, which expires
    # and which nobody knows the id of.
    chunklog.write_meta(str(job.id), live_meta(job))
    job.save(force_insert=True)
    bind_job_id(job.id)  # the rest of this request logs with the job's id
    log.info("job created (engine %s, face %s)", engine.name, face)
    metrics.job_created(engine=engine.name, face=face)
    # Enqueue only once the row is committed, so the worker never looks for a missing job.
    if engine.is_limited:
        ticket = admission.ticket_of(job, weight=placement.weight)
        transaction.on_commit(lambda: admission.submit(engine, ticket))
    else:
        send = queueing.send_batch_job if placement.priority == BATCH else queueing.send_job
        transaction.on_commit(lambda: send(str(job.id)))
    return job


def _answering(made: Callable[P, tuple[Job, bool]]) -> Callable[P, JobView]:
    def start(*args: P.args, **kwargs: P.kwargs) -> JobView:
        job, replayed = made(*args, **kwargs)
        return JobView.of(job, replayed=replayed)

    return start


def _keeping(made: Callable[P, tuple[Job, bool]]) -> Callable[P, Job]:
    def create(*args: P.args, **kwargs: P.kwargs) -> Job:
        return made(*args, **kwargs)[0]

    return create


# The faces start a job and answer its view, `replayed` when an earlier request with the same
# idempotency key made it; a caller that keeps the row (a Batch API line, which has no key)
# creates it.
job_start = _answering(_job_make)
job_create = _keeping(_job_make)


def refusal(engine: Engine, exc: UnsupportedParameter) -> str:
    """What every face says of a parameter the engine cannot honour."""
    return JobRefused(engine.name, exc.param, str(exc)).message


def job_cancel(job_id: uuid.UUID | str) -> None:
    """Ask the worker to stop; a job still queued is ended here and leaves its engine's queue
    (the engine as Postgres has it: a view read from Redis knows nothing of its limits).
    Cancelling twice is harmless."""
    key = str(job_id)
    chunklog.request_cancel(key)
    if lifecycle.end_queued(key, Job.Status.CANCELLED, "cancelled", "The job was cancelled."):
        engine = Engine.objects.get(jobs__id=key)
        if engine.is_limited:
            admission.release(engine, key, None)


def engine_upsert(*, name: str, kind: str, config: dict[str, Any], secret: str | None = None) -> Engine:
    """Create or update an engine by name; a None secret keeps the stored one."""
    defaults: dict[str, Any] = {"kind": kind, "config": config, "is_active": True}
    if secret is not None:
        defaults["secret"] = secret
    engine, _ = Engine.objects.update_or_create(name=name, defaults=defaults)
    return engine
