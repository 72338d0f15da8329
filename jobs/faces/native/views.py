"""The native /v1/jobs endpoints. Async views: a waiting poll or stream holds no thread."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpResponse, HttpResponseBase, JsonResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request

from engine.types import GenerationRequest
from jobs import readtokens, services
from jobs.access import engines_of, key_grant
from jobs.batches.selectors import batch_for_owner, job_page
from jobs.dbwork import db_work
from jobs.faces.common import sse
from jobs.faces.common.auth import ApiKeyAuthentication, ReadTokenAuthentication
from jobs.faces.common.errors import FaceError, refuse_unknown
from jobs.faces.common.pagination import AfterLimitPagination, query_values
from jobs.faces.common.params import accepted, build_request
from jobs.faces.common.placement import body_priority, body_seconds, placement_of, replay_headers
from jobs.faces.common.schema import errors, idempotency_headers
from jobs.faces.common.serializers import check
from jobs.faces.common.views import FaceView, caller, readable
from jobs.faces.native import render
from jobs.faces.native import serializers as shapes
from jobs.faces.native.queue import QueueView, may_wait, queue_of
from jobs.jobview import JobView
from jobs.models import Job
from jobs.paging import UnknownCursor
from jobs.placement import Placement
from jobs.selectors import (
    engine_lookup,
    job_chunks_since,
    job_following,
    job_for_owner,
    job_page_for_owner,
    job_refreshed,
    job_wait_until_finished,
)

log = logging.getLogger(__name__)

# The OpenAI parameter names this face accepts inside "parameters" (store and metadata may also
# be given at the top level of the body): all but `stream` (the stream is its own endpoint here)
# and `safety_identifier`.
KNOWN_PARAMS = accepted() - {"stream", "safety_identifier"}
BODY_FIELDS = frozenset(
    {"engine", "model", "messages", "command", "context", "parameters", "store", "metadata", "priority",
     "queue_timeout", "run_timeout"}
)  # fmt: skip
FACE = "jobs"
paging = AfterLimitPagination()


class NativeView(FaceView):
    # Keys only, never the session cookie: these endpoints are not CSRF-protected.
    face = FACE
    invalid_json = "We could not parse the JSON body of your request: send a JSON object."


# ---- parsing ---------------------------------------------------------------------------------


def json_object(view: NativeView, request: Request) -> dict[str, Any]:
    body = view.json_body(request)
    if not isinstance(body, dict):
        raise FaceError("The request body must be a JSON object.", code="invalid_json")
    return body


def _integer(raw: str | None, name: str, *, default: int, low: int) -> int:
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low:
        raise FaceError(f"Invalid '{name}': expected an integer >= {low}.", param=name, code="invalid_value")
    return value


def _query(request: Request, shape: type) -> dict[str, Any]:
    """The query parameters through the view's serializer; a blank value means the default."""
    given = {
        name: value for name, value in request.query_params.items() if value != "" and name in shape().fields
    }
    return check(shape, given, custom=shapes.QUERY_WORDING)


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages, command, context = body.get("messages"), body.get("command"), body.get("context")
    if (messages is None) == (command is None):
        both = messages is not None
        raise FaceError(
            "Give exactly one of 'messages' and 'command'.",
            param="messages",
            code="invalid_parameter_combination" if both else "missing_required_parameter",
        )
    if context is not None and not isinstance(context, str):
        raise FaceError(
            "Invalid type for 'context': expected a string.", param="context", code="invalid_type"
        )
    system = [{"role": "system", "content": context}] if context else []
    if command is not None:
        if not isinstance(command, str):
            raise FaceError(
                "Invalid type for 'command': expected a string.", param="command", code="invalid_type"
            )
        return [*system, {"role": "user", "content": command}]
    if (
        not isinstance(messages, list)
        or not messages
        or not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages)
    ):
        raise FaceError(
            "Invalid 'messages': expected a non-empty array of objects, each with a 'role'.",
            param="messages",
            code="invalid_value",
        )
    return [*system, *messages]


def _params(body: dict[str, Any]) -> dict[str, Any]:
    params = body.get("parameters")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise FaceError(
            "Invalid type for 'parameters': expected an object.", param="parameters", code="invalid_type"
        )
    params = dict(params)
    for name in ("store", "metadata"):
        if name in body:
            if name in params:
                raise FaceError(
                    f"'{name}' is given both at the top level and in 'parameters'; give it once.",
                    param=name,
                    code="invalid_parameter_combination",
                )
            params[name] = body[name]
    return params


def engine_ref(body: dict[str, Any]) -> tuple[str, str]:
    """(the field that named the engine, its value)."""
    given = [name for name in ("engine", "model") if body.get(name) is not None]
    if len(given) != 1:
        raise FaceError(
            "Give exactly one of 'engine' (an engine id or name) and 'model'.",
            param="engine",
            code="invalid_parameter_combination" if given else "missing_required_parameter",
        )
    ref = body[given[0]]
    if not isinstance(ref, str) or not ref:
        raise FaceError(
            f"Invalid type for '{given[0]}': expected a string.", param=given[0], code="invalid_type"
        )
    return given[0], ref


def engine_not_found(field: str, ref: str) -> FaceError:
    return FaceError(
        f"No engine found with id or name '{ref}'.", param=field, code="engine_not_found", status=404
    )


def _placement(request: Request, body: dict[str, Any]) -> Placement:
    """A job here is started and answered at once (no client waits on its answer): it runs at
    default unless it asks for another class."""
    return placement_of(
        request,
        waiting=False,
        priority=body_priority(body.get("priority")),
        queue_timeout=body_seconds(body.get("queue_timeout"), "queue_timeout"),
        run_timeout=body_seconds(body.get("run_timeout"), "run_timeout"),
    )


@db_work
def _create(
    user: User,
    engines: frozenset[str],
    field: str,
    ref: str,
    request: GenerationRequest,
    options: dict[str, Any],
    placement: Placement,
) -> tuple[JobView, QueueView | None]:
    """Find the engine and create the job, and where it waits: one thread hop for all."""
    engine = engine_lookup(ref)
    if engine is None:
        raise engine_not_found(field, ref)
    job = services.job_start(
        owner=user, engine=engine, request=request, options=options, face=FACE, engines=engines,
        placement=placement,
    )  # fmt: skip
    return job, queue_of(job, engine)


async def _owned(request: Request, job_id: str, *, live: bool = True) -> JobView:
    job = await job_for_owner(readable(request, job_id), caller(request).pk, live=live)
    if job is None:
        raise _not_found(job_id)
    return job


def _not_found(job_id: str) -> FaceError:
    # The same answer for an unknown, malformed or another user's id: nothing says which.
    return FaceError(f"No job found with id '{job_id}'.", code="job_not_found", status=404)


async def _reloaded(job: JobView) -> JobView:
    return JobView.of(await Job.objects.select_related("engine").aget(pk=job.id))


async def _queue(job: JobView) -> QueueView | None:
    """Where a queued job waits; the scheduler is asked (a thread hop, as its client is sync)
    only about a queued job of a limited engine."""
    if not may_wait(job):
        return None
    return await db_work(queue_of)(job)


# ---- endpoints -------------------------------------------------------------------------------


CREATE_EXAMPLES = [
    OpenApiExample(
        "command",
        summary="One user message.",
        value={"engine": "spool-offline", "command": "Tell me of the king.", "parameters": {"max_tokens": 8}},
        request_only=True,
    ),
    OpenApiExample(
        "messages",
        summary="Chat messages, stored with metadata.",
        value={"model": "spool-offline",
               "messages": [{"role": "system", "content": "Be brief."},
                            {"role": "user", "content": "Speak."}],
               "parameters": {"max_completion_tokens": 6, "seed": 3, "logprobs": True, "top_logprobs": 2},
               "store": True, "metadata": {"suite": "openapi"}},
        request_only=True,
    ),
]  # fmt: skip
EVENTS = """Server-sent events, in order: `chunk` (`id: <seq>`, a Chunk); `error` (`id: <seq>`, the
error Chunk that ends a failed or cancelled job); `result` (the final Job); `done` (`{}`). Comments
(`: keep-alive`) come during silences. Reconnect with `Last-Event-ID: <seq>` (or `?after=<seq>`)
to resume after that chunk. An `error` event without an id is a failure of the stream itself (an
Error envelope); no `done` follows, so a client reconnects."""
JOB_ID = OpenApiParameter("job_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


class Jobs(NativeView):
    @extend_schema(
        operation_id="createJob",
        summary="Start a job; answers at once.",
        request=shapes.JobCreate,
        responses={202: OpenApiResponse(shapes.Job, description="The job, queued."), **errors(404, 409, 413)},
        parameters=idempotency_headers(202),
        examples=CREATE_EXAMPLES,
    )
    async def post(self, request: Request) -> JsonResponse:
        body = json_object(self, request)
        refuse_unknown(body, BODY_FIELDS)
        field, ref = engine_ref(body)
        messages = _messages(body)
        generation, options = build_request(messages, _params(body), known=KNOWN_PARAMS)
        placement = _placement(request, body)
        job, queue = await _create(
            caller(request), engines_of(request.auth), field, ref, generation, options.to_dict(), placement
        )
        headers = {"Location": f"/v1/jobs/{job.pk}", **replay_headers(job)}
        return JsonResponse(render.job(job, queue), status=202, headers=headers)

    @extend_schema(
        operation_id="listJobs",
        summary="The caller's jobs, newest first unless asked otherwise; one batch's with ?batch=.",
        parameters=[shapes.JobListQuery],
        responses={200: shapes.JobList, **errors(404)},
    )
    async def get(self, request: Request) -> HttpResponse:
        query = query_values(request)
        values = check(shapes.JobListQuery, query)
        owner, batch = caller(request), values.get("batch") or None
        page_query = {**paging.read(query), "order": values.get("order") or "desc"}

        def read() -> HttpResponse:
            if batch is not None and batch_for_owner(batch, owner.pk) is None:
                raise FaceError(
                    f"No batch found with id '{batch}'.", param="batch", code="batch_not_found", status=404
                )
            try:
                page = job_page(owner.pk, batch=batch, status=values.get("status") or None, **page_query)
            except UnknownCursor as exc:
                raise paging.unknown_after(str(exc)) from None
            return paging.respond(page, render.job)

        return await db_work(read)()


class JobReader(NativeView):
    # Reads one job: a read token for that job will do as well as a key.
    authentication_classes = [ApiKeyAuthentication, ReadTokenAuthentication]


class JobDetail(JobReader):
    @extend_schema(
        operation_id="getJob",
        summary="Status, timings, usage, and the result once it ended.",
        parameters=[JOB_ID, shapes.WaitQuery],
        responses={200: shapes.Job, **errors(404)},
    )
    async def get(self, request: Request, job_id: str) -> JsonResponse:
        # From Postgres: the job object carries timings a live job's Redis meta does not.
        found = await _owned(request, job_id, live=False)
        wait = _query(request, shapes.WaitQuery)["wait"]
        if wait and not found.is_finished:
            found = await job_wait_until_finished(found, timeout=wait)
        return JsonResponse(render.job(found, await _queue(found)))


class Chunks(JobReader):
    @extend_schema(
        operation_id="getJobChunks",
        summary="Long-poll for the chunks after sequence number `after`.",
        parameters=[JOB_ID, shapes.ChunksQuery],
        responses={200: shapes.ChunkPage, **errors(404)},
    )
    async def get(self, request: Request, job_id: str) -> JsonResponse:
        try:
            query = _query(request, shapes.ChunksQuery)
        except FaceError:
            await _owned(request, job_id)  # an unknown job's 404 comes before its query's 400
            raise
        after = query["after"]
        found_page = await job_page_for_owner(
            readable(request, job_id),
            caller(request).pk,
            cursor=after + 1,
            reader="native",
            wait=query["wait"],
        )
        if found_page is None:
            raise _not_found(job_id)
        found, page = found_page
        if page.ended and not found.is_finished:
            # The worker commits the job before it writes the terminal chunk: reread for the status.
            found = await _reloaded(found)
        return JsonResponse(
            {
                "object": "list",
                "job_id": str(found.pk),
                "status": found.status,
                "chunks": [render.chunk(page.start + i, c) for i, c in enumerate(page.chunks)],
                "last_seq": page.next_cursor - 1 if page.chunks else after,
                "done": page.ended,
            }
        )


async def _event_stream(job: JobView, after: int) -> AsyncIterator[str]:
    cursor = after + 1
    try:
        async with job_following(job) as following:
            while True:
                page = await job_chunks_since(
                    job, cursor=cursor, reader="native", wait=sse.KEEPALIVE_SECONDS, following=following
                )
                if page.chunks:
                    # One write per page, not per chunk: each yield is an ASGI message and a send.
                    yield "".join(render.sse_chunk(page.start + i, raw) for i, raw in enumerate(page.chunks))
                cursor = max(cursor, page.next_cursor)
                if page.ended:
                    break
                if not page.chunks:
                    yield sse.KEEPALIVE.decode()
                    # A job that ended meanwhile is then read from Postgres, also if its live log
                    # expired or the cursor was past its end.
                    job = await job_refreshed(job)
        yield render.sse(render.EVENT_RESULT, render.job(await _reloaded(job)))
        yield render.sse(render.EVENT_DONE, {})
    except Exception:
        # The response has started: the envelope goes in an id-less error event, and the missing
        # `done` tells the client to reconnect.
        log.exception("event stream of job %s failed", job.pk)
        failure = render.error("The event stream failed.", type="server_error", code="stream_failed")
        yield render.sse(render.EVENT_ERROR, failure)


class Events(JobReader):
    @extend_schema(
        operation_id="streamJobEvents",
        summary="Stream the job's chunks, then its result, as server-sent events.",
        parameters=[
            JOB_ID,
            shapes.EventsQuery,
            OpenApiParameter(
                "Last-Event-ID",
                OpenApiTypes.INT,
                OpenApiParameter.HEADER,
                description="Resume after this sequence number; wins over `after`.",
            ),
        ],  # fmt: skip
        responses={
            (200, "text/event-stream"): OpenApiResponse(shapes.JobEvent, description=EVENTS),
            **errors(404),
        },
    )
    async def get(self, request: Request, job_id: str) -> HttpResponseBase:
        found = await _owned(request, job_id)
        # A reconnecting EventSource sends Last-Event-ID and repeats the original URL: the header wins.
        last_event_id = request.headers.get("Last-Event-ID")
        if last_event_id not in (None, ""):
            after = _integer(last_event_id, "Last-Event-ID", default=-1, low=-1)
        else:
            after = _query(request, shapes.EventsQuery)["after"]
        return sse.stream(_event_stream(found, after))


class Cancel(NativeView):
    @extend_schema(
        operation_id="cancelJob",
        summary="Cancel; the output so far is kept. Cancelling an ended job changes nothing.",
        parameters=[JOB_ID],
        request=None,
        responses={200: OpenApiResponse(shapes.Job, description="The job, cancelled once it stopped."),
                   **errors(404)},
    )  # fmt: skip
    async def post(self, request: Request, job_id: str) -> JsonResponse:
        found = await _owned(request, job_id)
        if not found.is_finished:
            await db_work(services.job_cancel)(found.id)
            # A running job stops at the worker's next write; answer with the end when it comes soon.
            found = await job_wait_until_finished(found, timeout=settings.SPOOL.web.long_poll_seconds * 5)
        return JsonResponse(render.job(found))


class ReadTokens(NativeView):
    @extend_schema(
        operation_id="createJobReadToken",
        summary="A short-lived token that reads this job only (for a browser's EventSource).",
        parameters=[JOB_ID],
        request=shapes.ReadTokenCreate,
        responses={201: shapes.ReadToken, **errors(404)},
    )
    async def post(self, request: Request, job_id: str) -> JsonResponse:
        body = json_object(self, request) if request._request.body else {}
        refuse_unknown(body, shapes.ReadTokenCreate().fields)
        asked = check(shapes.ReadTokenCreate, body)
        found = await _owned(request, job_id)
        grant = key_grant(request.auth)
        if grant is None:  # keys only on this view: the permission class saw one
            raise FaceError("Send your API key to make a read token.", status=401, code="invalid_api_key")
        seconds = readtokens.lifetime(asked.get("expires_in"))
        if grant.expires_at is not None:
            # A token never outlives the key that made it.
            left = int((grant.expires_at - timezone.now()).total_seconds())
            seconds = max(1, min(seconds, left))
        token, expires_at = readtokens.mint(key_id=grant.key_id, job_id=found.pk, seconds=seconds)
        return JsonResponse(
            {"object": "job.read_token", "token": token, "job_id": str(found.pk), "expires_at": expires_at},
            status=201,
        )
