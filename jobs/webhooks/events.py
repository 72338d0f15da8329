"""The events a job's end makes, and the one function every terminal transition calls.

`job.succeeded`, `job.failed`, `job.cancelled` for every job of every face; for a job of the
Responses face also OpenAI's own `response.completed`, `response.incomplete`, `response.failed`,
`response.cancelled`, with OpenAI's payload (`data: {"id": "resp_..."}`). A batch's end makes
OpenAI's `batch.completed`, `batch.failed`, `batch.cancelled` or `batch.expired`
(`data: {"id": "batch_..."}`).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, TypedDict

from django.db import transaction
from django.utils import timezone

from jobs import responses
from jobs.jobview import JobView
from jobs.models import Job
from jobs.protocols.openai_chat import completion_id
from jobs.webhooks.delivery import send_first_attempts
from jobs.webhooks.models import WebhookDelivery, WebhookEndpoint

JOB_EVENTS = {
    Job.Status.SUCCEEDED: "job.succeeded",
    Job.Status.FAILED: "job.failed",
    Job.Status.CANCELLED: "job.cancelled",
}
RESPONSE_COMPLETED, RESPONSE_INCOMPLETE = "response.completed", "response.incomplete"
RESPONSE_EVENTS = {
    Job.Status.FAILED: "response.failed",
    Job.Status.CANCELLED: "response.cancelled",
}
BATCH_EVENTS = ("batch.completed", "batch.failed", "batch.cancelled", "batch.expired")
EVENT_TYPES = sorted(
    {*JOB_EVENTS.values(), *RESPONSE_EVENTS.values(), RESPONSE_COMPLETED, RESPONSE_INCOMPLETE, *BATCH_EVENTS}
)


class Event(TypedDict):
    id: str
    object: str
    type: str
    created_at: int
    data: dict[str, Any]


def face_id(job: JobView) -> str:
    """The id the job's face gave its client: SEMOSS jobId and native job id are the job's id."""
    if job.face in ("openai", "completions"):
        return completion_id(job.pk, "chatcmpl-" if job.face == "openai" else "cmpl-")
    if job.face == responses.FACE:
        return responses.response_id(job.pk)
    return str(job.pk)


def _response_event_type(job: JobView) -> str:
    if job.status == Job.Status.SUCCEEDED:
        return RESPONSE_INCOMPLETE if job.finish_reason == responses.CUT_SHORT else RESPONSE_COMPLETED
    return RESPONSE_EVENTS[Job.Status(job.status)]


def _event(type: str, created_at: int, data: dict[str, Any]) -> Event:
    return {
        "id": "evt_" + uuid.uuid4().hex,
        "object": "event",
        "type": type,
        "created_at": created_at,
        "data": data,
    }


def events_for(job: JobView) -> list[Event]:
    """The events of an ended job."""
    ended = int((job.finished_at or timezone.now()).timestamp())
    events = [
        _event(
            JOB_EVENTS[Job.Status(job.status)],
            ended,
            {
                "id": str(job.pk),
                "object": "job",
                "face": job.face,
                "face_id": face_id(job),
                "status": job.status,
                "finish_reason": job.finish_reason or None,
                "usage": job.usage,
            },
        )
    ]
    if job.face == responses.FACE:
        events.append(_event(_response_event_type(job), ended, {"id": responses.response_id(job.pk)}))
    return events


def _deliver(endpoints: list[WebhookEndpoint], events: list[Event], job: Job | None) -> None:
    now = timezone.now()
    deliveries = [
        WebhookDelivery(
            endpoint=endpoint,
            event_id=event["id"],
            event_type=event["type"],
            job=job,
            payload=event,
            retrying_since=now,
            next_attempt_at=now,
        )
        for event in events
        for endpoint in endpoints
        if event["type"] in endpoint.event_types
    ]
    if not deliveries:
        return
    WebhookDelivery.objects.bulk_create(deliveries)
    ids = [str(d.pk) for d in deliveries]
    held = _held.get()
    if held is None:
        transaction.on_commit(lambda: send_first_attempts(ids))
    else:
        held.extend(ids)


# The deliveries of the transaction in sends_held(), kept for its caller to send.
_held: ContextVar[list[str] | None] = ContextVar("spool_webhook_sends_held", default=None)


@contextlib.contextmanager
def sends_held() -> Iterator[list[str]]:
    """Around a transaction (`with sends_held() as held, transaction.atomic():`): the first
    attempts of the deliveries it makes are not published at its commit but kept in `held`, for
    the caller to send (send_first_attempts) once it has done what must come first. The worker
    ends a job's log before it publishes: a publish can take tens of ms (a process's first
    connects to the broker), and the job's readers waited for the log's end behind it
    (bench/final_event.py). If the transaction raises, `held` is the caller's to drop; a process
    that dies before its send leaves pending rows, which the sweeper sends (OVERDUE_SECONDS).
    Inside a transaction already open the deliveries wait for its commit, as without it."""
    held: list[str] = []
    if transaction.get_connection().in_atomic_block:
        yield held
        return
    token = _held.set(held)
    try:
        yield held
    finally:
        _held.reset(token)


def batch_ended(owner_id: int, batch_id: str, status: str) -> None:
    """Called inside the transaction that ends a batch (status: completed, failed, cancelled or
    expired; `batch_id` as its API names it), as job_ended is for a job."""
    endpoints = list(WebhookEndpoint.objects.filter(owner_id=owner_id, enabled=True))
    if endpoints:
        event = _event(f"batch.{status}", int(timezone.now().timestamp()), {"id": batch_id})
        _deliver(endpoints, [event], None)


def job_ended(job_id: Any) -> None:
    """Called by every transition of a job to a terminal status, inside the transaction that
    makes it (runner, sweeper, cancel of a queued job): writes one delivery per event and
    endpoint of the job's owner that wants it, and sends them to the queue once committed. So a
    rollback sends nothing, and a crash after the commit leaves rows the sweeper sends."""
    endpoints = list(WebhookEndpoint.objects.filter(owner__jobs__id=job_id, enabled=True))
    if not endpoints:
        return
    job = Job.objects.select_related("engine").get(id=job_id)
    _deliver(endpoints, events_for(JobView.of(job)), job)
