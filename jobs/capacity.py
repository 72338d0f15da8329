"""An engine's capacity as an operator reads it: its limits, and the live queue of a limited
engine (jobs.scheduling.admission.status), in the words the admin and `manage.py spool_engine`
show. Reading a queue is one Redis call per engine; an outage shows as "unavailable", never as
an error page."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import redis

from jobs.models import Engine
from jobs.scheduling import admission
from jobs.scheduling.admission import QueueStatus

log = logging.getLogger(__name__)

LIMIT_FIELDS = ("max_concurrency", "requests_per_minute", "tokens_per_minute")
# The column type of the three limits (a Postgres integer) bounds what may be stored.
LIMIT_MAX = 2**31 - 1
UNAVAILABLE = "unavailable"
REASONS = {
    "engine_full": "engine full",
    "rate_limited": "rate limited",
    "held": "held (the upstream answered 429 with Retry-After)",
}


def limits_text(engine: Engine) -> str:
    """'4 at once, 60 requests/min, 100,000 tokens/min', or 'none'."""
    parts = []
    if engine.max_concurrency:
        parts.append(f"{engine.max_concurrency:,} at once")
    if engine.requests_per_minute:
        parts.append(f"{engine.requests_per_minute:,} requests/min")
    if engine.tokens_per_minute:
        parts.append(f"{engine.tokens_per_minute:,} tokens/min")
    return ", ".join(parts) or "none"


def queue_status(engine: Engine, job_id: str = "") -> QueueStatus | None:
    """The engine's queue (and where job_id stands in it); None: Redis could not be reached."""
    try:
        return admission.status(engine, job_id)
    except redis.RedisError as exc:
        log.warning("the queue of engine %s is unavailable: %s", engine.name, exc)
        return None


def queues(engines: Iterable[Engine]) -> dict[Any, QueueStatus | None]:
    """Each limited engine's queue by engine id, read once; None: Redis could not be reached.
    After the first failed read the others are not tried: a page of engines then costs one
    failed connection (with its retries and timeouts), not one per engine."""
    found: dict[Any, QueueStatus | None] = {}
    reachable = True
    for engine in engines:
        if engine.is_limited:
            found[engine.pk] = queue_status(engine) if reachable else None
            reachable = found[engine.pk] is not None
    return found


def waiting_text(status: QueueStatus) -> str:
    """'3 interactive, 12 default, 0 batch'."""
    return ", ".join(f"{count:,} {cls}" for cls, count in status.waiting.items())


def slots_text(engine: Engine, status: QueueStatus) -> str:
    """'3 of 4 in use', or '3 in use' on an engine limited by rate only."""
    if engine.max_concurrency:
        return f"{status.running:,} of {engine.max_concurrency:,} in use"
    return f"{status.running:,} in use"


def reason_text(status: QueueStatus) -> str:
    return REASONS.get(status.reason, status.reason) if status.reason else "-"


def job_place_text(status: QueueStatus | None) -> str:
    """Where one queued job stands in its engine's queue."""
    if status is None:
        return UNAVAILABLE
    if not status.state:
        return "not in its engine's queue (the sweeper submits a queued job it does not find there again)"
    parts = [status.state, f"class {status.priority}"]
    if status.ahead is not None:
        parts.append(f"{status.ahead:,} ahead of it in its owner's {status.priority} queue")
    if status.reason:
        parts.append(f"admissions stopped: {reason_text(status)}")
    return "; ".join(parts)
