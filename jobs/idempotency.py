"""Idempotency keys: a request that creates a job may carry `Idempotency-Key`; the same key from
the same owner within a day returns the job it made (its id and state as they are now: a
stream rejoins it from its start) instead of making another, which the openai SDK's retry of a
POST that timed out otherwise did. The same key with another request is a conflict (409).

The key's row is inserted first, inside job_create's transaction: of concurrent requests with
one key, the others' inserts wait on the unique index until the first commits, then read the
job it made. The row goes with its job (retention deletes both)."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import orjson
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from engine.types import GenerationRequest
from jobs.models import Engine, IdempotencyKey, Job

KEEP_FOR = timedelta(hours=24)
MAX_LENGTH = 255
# Options that differ between two sends of one request (set from the time it arrived, or by
# the tracing of each try), so they are not part of what "the same request" means.
_PER_SEND = frozenset({"queue_deadline", "traceparent"})


class IdempotencyConflict(Exception):
    """The key was used for another request; every face answers 409 in its own shape."""

    def __init__(self, key: str) -> None:
        super().__init__(
            f"Idempotency-Key '{key}' was already used with a different request in the last 24 hours; "
            "use a new key for a new request."
        )


class InvalidIdempotencyKey(ValueError):
    pass


def check_key(value: str | None) -> str | None:
    """The header's value, refused when it cannot be a key (empty, or longer than 255)."""
    if value is None:
        return None
    if not value.strip() or len(value) > MAX_LENGTH:
        raise InvalidIdempotencyKey(f"Idempotency-Key must be 1 to {MAX_LENGTH} characters.")
    return value


def fingerprint(
    engine: Engine,
    face: str,
    request: GenerationRequest,
    options: dict[str, Any],
    user_message: str | None,
    basis: Any = None,
) -> str:
    """What "the same request" means: the engine, the face, and what was asked (the request and
    its options, less what differs per send), or `basis`, what the client sent, when the face
    builds the request from more than that."""
    if basis is not None:
        body: list[Any] = [str(engine.pk), face, basis]
    else:
        kept = {k: v for k, v in options.items() if k not in _PER_SEND}
        body = [str(engine.pk), face, request.to_dict(), kept, user_message]
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


_TABLE = IdempotencyKey._meta.db_table
_CLAIM = (
    f"INSERT INTO {_TABLE} (owner_id, key, fingerprint, created_at) VALUES (%s, %s, %s, %s)"
    " ON CONFLICT (owner_id, key) DO NOTHING RETURNING id"
)


def replay(owner: User, key: str | None, fingerprint: str) -> Job | None:
    """Inside job_create's transaction. None: go on and make the job (this request holds the
    key now). Otherwise the job the key made."""
    if key is None:
        return None
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM, (owner.pk, key, fingerprint, now))
        if cursor.fetchone() is not None:
            return None
    held = IdempotencyKey.objects.select_for_update().get(owner=owner, key=key)
    if held.created_at < now - KEEP_FOR or held.job_id is None:
        # Past its day (or its job is gone): the key is this request's now.
        held.fingerprint, held.created_at, held.job = fingerprint, now, None
        held.save(update_fields=["fingerprint", "created_at", "job"])
        return None
    if held.fingerprint != fingerprint:
        raise IdempotencyConflict(key)
    return Job.objects.select_related("engine").get(pk=held.job_id)


def remember(owner: User, key: str | None, fingerprint: str, job: Job) -> None:
    if key is not None:
        IdempotencyKey.objects.filter(owner=owner, key=key).update(job=job)
