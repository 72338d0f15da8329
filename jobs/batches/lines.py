"""A batch's lines as jobs: one line becomes its BatchLine and its job in one savepoint, with the
request built by the endpoint's face and placed at class `batch`; and what each line's job came
to, as the line of the output or error file OpenAI writes."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User

from jobs import services
from jobs.access import EngineNotAllowed
from jobs.batches.endpoints import AnsweredEndpoint, Endpoint, LineRefused, LineWaiting
from jobs.batches.ids import LINE_PREFIX, public_id
from jobs.batches.models import Batch, BatchLine
from jobs.jobview import JobView
from jobs.models import Engine, Job
from jobs.placement import BATCH, Placement
from jobs.protocols.openai_errors import JOB_ERROR_STATUS, error_body, stream_error_type
from jobs.selectors import engine_lookup

log = logging.getLogger(__name__)

CANCELLED = {
    "code": "batch_cancelled",
    "message": "This request was not executed because the batch was cancelled.",
}
EXPIRED = {
    "code": "batch_expired",
    "message": "This request could not be executed before the completion window expired.",
}


def _model_not_found(model: str) -> LineRefused:
    message = f"The model `{model}` does not exist or you do not have access to it."
    return LineRefused(404, error_body(message, code="model_not_found"))


EngineLookup = Callable[[str], Engine | None]


def _job(
    batch: Batch, owner: User, endpoint: Endpoint, body: Any, window_left: float, lookup: EngineLookup
) -> Job:
    asked = endpoint.parse(owner, body)
    engine = lookup(asked.model)
    if engine is None:
        raise _model_not_found(asked.model)
    # A line that has not started when the window closes expires where it waits.
    placement = Placement(priority=BATCH, waiting=False, queue_timeout=max(window_left, 1.0))
    try:
        return services.job_create(
            owner=owner,
            engine=engine,
            request=asked.request,
            options={**asked.options, "batch": public_id("batch_", batch.pk)},
            face=endpoint.face,
            engines=frozenset(batch.engines),
            placement=placement,
            counted=False,  # the runner bounds an owner's active lines itself
        )
    except services.JobRefused as refused:
        body = error_body(refused.message, param=refused.param, code="unsupported_parameter")
        raise LineRefused(400, body) from None
    except EngineNotAllowed:
        raise _model_not_found(asked.model) from None


def start(
    batch: Batch,
    owner: User,
    endpoint: Endpoint,
    number: int,
    custom_id: str,
    body: Any,
    window_left: float,
    lookup: EngineLookup = engine_lookup,
) -> BatchLine:
    """The line and its job, or the line refused as its endpoint would have answered, written in
    the caller's transaction (the runner's, which moves the file's offset with them). A refusal
    comes before anything is written (services.job_create refuses first), so no savepoint is
    needed; the owner's job limits do not apply to lines (job_create's `counted`). `lookup`
    finds a line's engine by model (the runner's remembers them for a step)."""
    try:
        job = _job(batch, owner, endpoint, body, window_left, lookup)
    except LineRefused as refused:
        outcome = {"status_code": refused.status, "body": refused.body}
        return BatchLine.objects.create(batch=batch, line=number, custom_id=custom_id, refused=outcome)
    return BatchLine.objects.create(batch=batch, line=number, custom_id=custom_id, job=job)


def _record(line_id: str, custom_id: str, response: dict[str, Any] | None, error: Any) -> dict[str, Any]:
    return {"id": line_id, "custom_id": custom_id, "response": response, "error": error}


def _job_error(job: Job) -> dict[str, Any]:
    last = (job.chunks or [{}])[-1]
    data = last.get("data") if last.get("type") == "error" else None
    data = data or {"code": job.finish_reason or "engine_error", "message": job.error}
    code = data.get("code") or "engine_error"
    message = data.get("message") or "The generation failed."
    return {
        "status_code": JOB_ERROR_STATUS.get(code, 500),
        "body": error_body(message, type=stream_error_type(code), code=code),
    }


async def answer_all(
    endpoint: AnsweredEndpoint, owner: User, engines: frozenset[str], bodies: list[Any], wait: float
) -> list[dict[str, Any] | LineRefused | LineWaiting]:
    """Each body's answer, refusal, or LineWaiting, all asked at once (on the worker's loop)."""
    outcomes = await asyncio.gather(
        *(endpoint.answer(owner, engines, body, wait) for body in bodies), return_exceptions=True
    )
    found: list[dict[str, Any] | LineRefused | LineWaiting] = []
    for body, outcome in zip(bodies, outcomes, strict=True):
        if isinstance(outcome, BaseException) and not isinstance(outcome, LineRefused | LineWaiting):
            if not isinstance(outcome, Exception):
                raise outcome  # cancellation, interpreter exit: not the line's
            log.error("a batch line failed: %r", body.get("model"), exc_info=outcome)
            outcome = LineRefused(
                500,
                error_body(
                    "The server had an error processing this request.",
                    type="server_error",
                    code="server_error",
                ),
            )
        found.append(outcome)
    return found


def answered(batch: Batch, number: int, custom_id: str, outcome: dict[str, Any] | LineRefused) -> BatchLine:
    """The line of an answered endpoint, unsaved: its answer or its refusal."""
    if isinstance(outcome, LineRefused):
        refused = {"status_code": outcome.status, "body": outcome.body}
        return BatchLine(batch=batch, line=number, custom_id=custom_id, refused=refused)
    return BatchLine(batch=batch, line=number, custom_id=custom_id, answer=outcome)


def outcome(
    line: BatchLine, render: Callable[[JobView], dict[str, Any]] | None, ending: str
) -> tuple[bool, dict[str, Any]]:
    """(whether it goes to the output file, its line there) for a line that was answered, refused,
    or whose job has ended; `render` is its endpoint's rendering of a job (None: it has none)."""
    line_id = public_id(LINE_PREFIX, _uuid_of(line))
    if line.answer is not None:
        response = {"status_code": 200, "request_id": _uuid_of(line).hex, "body": line.answer}
        return True, _record(line_id, line.custom_id, response, None)
    if line.refused is not None:
        response = {
            "status_code": line.refused["status_code"],
            "request_id": None,
            "body": line.refused["body"],
        }
        return False, _record(line_id, line.custom_id, response, None)
    job = line.job
    if job is None:  # its job was deleted (retention) before the batch ended
        lost = {"code": "job_deleted", "message": "This request's job no longer exists."}
        return False, _record(line_id, line.custom_id, None, lost)
    request_id = job.pk.hex
    if job.status == Job.Status.SUCCEEDED:
        assert render is not None  # a line with a job has an endpoint that renders one
        response = {"status_code": 200, "request_id": request_id, "body": render(JobView.of(job))}
        return True, _record(line_id, line.custom_id, response, None)
    if job.finish_reason == "expired" or (job.status == Job.Status.CANCELLED and ending == "expired"):
        return False, _record(line_id, line.custom_id, None, EXPIRED)
    if job.status == Job.Status.CANCELLED and ending == "cancelled":
        return False, _record(line_id, line.custom_id, None, CANCELLED)
    return False, _record(line_id, line.custom_id, {"request_id": request_id, **_job_error(job)}, None)


def unstarted(batch: Batch, number: int, custom_id: str) -> dict[str, Any]:
    """The error line of a request the batch ended before starting."""
    line_id = public_id(LINE_PREFIX, _uuid_for(batch.pk, number))
    return _record(line_id, custom_id, None, EXPIRED if batch.ending == "expired" else CANCELLED)


def _uuid_of(line: BatchLine) -> uuid.UUID:
    return _uuid_for(line.batch_id, line.line)


def _uuid_for(batch_id: Any, number: int) -> uuid.UUID:
    """A line's id, the same however often the file is written: from the batch's id and its number."""
    return uuid.uuid5(uuid.UUID(str(batch_id)), str(number))
