"""Abuse limits per caller: requests per minute, job starts per minute, jobs running at once.

Counters are fixed one-minute windows in Redis (one INCR and EXPIRE in one round trip), which is
cheap and good enough to stop a runaway client; the concurrency cap counts rows in Postgres."""

from __future__ import annotations

import hashlib
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar

from django.conf import settings

from jobs.models import Job
from jobs.redis_clients import async_redis, sync_redis


class LimitExceeded(Exception):
    """Rendered as 429 with Retry-After in the calling face's shape."""

    def __init__(self, message: str, *, retry_after: int, code: str = "rate_limit_exceeded") -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.code = code


def _window() -> tuple[int, int]:
    """(current minute, seconds until the next one)."""
    now = time.time()
    minute = int(now // 60)
    return minute, max(1, int((minute + 1) * 60 - now))


def _key(kind: str, who: str, minute: int) -> str:
    return f"{settings.SPOOL.redis.prefix}:limit:{kind}:{who}:{minute}"


def caller_of(authorization: str, session_key: str | None) -> str | None:
    """A stable, secret-free name for who is calling: a hash of their credentials."""
    material = authorization or (f"session:{session_key}" if session_key else "")
    return hashlib.sha256(material.encode()).hexdigest()[:24] if material else None


def _incr(kind: str, who: str) -> tuple[str, int]:
    """(the counter's key for this minute, seconds until the next minute)."""
    minute, retry_after = _window()
    return _key(kind, who, minute), retry_after


def _check(used: int, limit: int, what: str, retry_after: int) -> None:
    if used > limit:
        raise LimitExceeded(
            f"Rate limit reached: {limit} {what} per minute. Try again in {retry_after} s.",
            retry_after=retry_after,
        )


@dataclass(slots=True)
class RequestCount:
    """One request's count toward its caller's requests per minute. A view that reads Redis
    before it does anything else sends it in that read's round trip (take_deferred), else on
    its own (send)."""

    key: str
    limit: int
    retry_after: int
    taken: bool = False
    # A minute's counter lives this long after its last count: past its minute's end, always.
    ttl_seconds: ClassVar[int] = 61

    def queue(self, pipe: Any) -> None:
        """Add the count to a pipeline; its first reply is then the count (see check)."""
        pipe.incr(self.key).expire(self.key, self.ttl_seconds)

    def check(self, used: int) -> None:
        _check(used, self.limit, "requests", self.retry_after)

    async def send(self) -> None:
        pipe = async_redis().pipeline(transaction=False)
        self.queue(pipe)
        used, _ = await pipe.execute()
        self.check(used)


# The count a request's throttle left to go with the request's first read of Redis.
_deferred: ContextVar[RequestCount | None] = ContextVar("spool_deferred_request_count", default=None)


def request_count(who: str) -> RequestCount | None:
    """None when requests are not limited."""
    limit = settings.SPOOL.limits.requests_per_minute
    if limit <= 0:
        return None
    key, retry_after = _incr("req", who)
    return RequestCount(key, limit, retry_after)


async def count_request(who: str) -> None:
    count = request_count(who)
    if count is not None:
        await count.send()


def defer(count: RequestCount | None) -> None:
    """Leave the request's count to its first read of Redis (take_deferred); settle_deferred,
    once the request is answered, sends it if no read took it."""
    _deferred.set(count)


def take_deferred() -> RequestCount | None:
    """The request's count, for the caller to send in its own round trip and check before it
    acts on what it read; None if there is none or another read took it."""
    count = _deferred.get()
    if count is None or count.taken:
        return None
    count.taken = True
    return count


async def settle_deferred() -> None:
    """Send the request's count if no read took it (raises LimitExceeded over the limit)."""
    count = take_deferred()
    _deferred.set(None)
    if count is not None:
        await count.send()


def check_job_start(owner_id: int) -> None:
    """Called by job_create before it writes anything."""
    limit = settings.SPOOL.limits.jobs_per_minute
    if limit > 0:
        key, retry_after = _incr("jobs", str(owner_id))
        used, _ = (
            sync_redis().pipeline(transaction=False).incr(key).expire(key, RequestCount.ttl_seconds).execute()
        )
        _check(used, limit, "jobs", retry_after)
    active_cap = settings.SPOOL.limits.max_active_jobs
    if active_cap > 0:
        active = Job.objects.filter(owner_id=owner_id, status__in=[Job.Status.QUEUED, Job.Status.RUNNING])
        if active.count() >= active_cap:
            raise LimitExceeded(
                f"Too many jobs at once: at most {active_cap} queued or running per user. "
                "Wait for one to finish.",
                retry_after=1,
                code="too_many_active_jobs",
            )
