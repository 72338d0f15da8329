"""What every face reads the same way to place a job in its engine's queue: the caller's key
(the highest class it may ask for, its weight) and the headers any face takes (Idempotency-Key,
X-Spool-Queue-Timeout, X-Spool-Run-Timeout). Each face adds its own parameters: its priority,
whether its client waits for the answer, and timeouts given in its body."""

from __future__ import annotations

from typing import Any, TypeVar

from django.http import HttpResponseBase
from rest_framework.request import Request

from jobs.access import key_grant
from jobs.idempotency import check_key
from jobs.jobview import JobView
from jobs.placement import INTERACTIVE, InvalidPlacement, Placement, check_class, check_seconds

IDEMPOTENCY_KEY = "Idempotency-Key"
QUEUE_TIMEOUT = "X-Spool-Queue-Timeout"
RUN_TIMEOUT = "X-Spool-Run-Timeout"
REPLAYED = "Idempotent-Replayed"

R = TypeVar("R", bound=HttpResponseBase)


def placement_of(
    request: Request,
    *,
    waiting: bool,
    priority: str | None = None,
    queue_timeout: float | None = None,
    run_timeout: float | None = None,
) -> Placement:
    """The request's placement. A timeout the face read from its body wins over the header.
    Raises InvalidPlacement or InvalidIdempotencyKey (400 in the face's shape)."""
    headers = request._request.headers
    grant = key_grant(request.auth)
    queue_header = check_seconds(headers.get(QUEUE_TIMEOUT), QUEUE_TIMEOUT)
    run_header = check_seconds(headers.get(RUN_TIMEOUT), RUN_TIMEOUT)
    return Placement(
        priority=priority,
        waiting=waiting,
        queue_timeout=queue_header if queue_timeout is None else queue_timeout,
        run_timeout=run_header if run_timeout is None else run_timeout,
        idempotency_key=idempotency_key(request),
        # A password session is the user's own: no key limits it.
        cap=grant.max_priority if grant is not None else INTERACTIVE,
        weight=grant.weight if grant is not None else 1,
    )


def idempotency_key(request: Request) -> str | None:
    """The request's Idempotency-Key; raises InvalidIdempotencyKey (400) for one that is none."""
    return check_key(request._request.headers.get(IDEMPOTENCY_KEY))


def body_priority(value: Any, param: str = "priority") -> str | None:
    """A priority class given in a request body (None: the face's default)."""
    return None if value is None else check_class(value, param)


def body_seconds(value: Any, param: str) -> float | None:
    """A timeout given in a request body: a number, where a header carries it as text."""
    if isinstance(value, str):
        raise InvalidPlacement(f"'{param}' must be a positive number of seconds; got {value!r}.", param)
    return check_seconds(value, param)


def replay_headers(job: JobView) -> dict[str, str]:
    """Idempotent-Replayed when job_start answered with the job an earlier request with the
    same key made."""
    return {REPLAYED: "true"} if job.replayed else {}


def mark_replayed(response: R, job: JobView) -> R:
    for name, value in replay_headers(job).items():
        response[name] = value
    return response
