"""/v1/responses: create (wait, stream, or background), retrieve (or resume its stream),
cancel, delete, and the input items. A response is a job of face "responses"; its id is
"resp_" + the job's hex (jobs.responses)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpResponse, HttpResponseBase, JsonResponse
from rest_framework.request import Request

from engine.types import ChunkDict, GenerationRequest
from jobs import chunklog, responses, services
from jobs.access import engines_of
from jobs.dbwork import db_work
from jobs.faces.common import sse as common_sse
from jobs.faces.common.errors import FaceError
from jobs.faces.common.pagination import query_values
from jobs.faces.common.params import build_request
from jobs.faces.common.placement import idempotency_key, placement_of
from jobs.faces.common.serializers import check
from jobs.faces.common.views import caller
from jobs.faces.openai.base import OpenAIView
from jobs.faces.openai.errors import not_found
from jobs.faces.openai.responses import create, shapes, sse
from jobs.faces.openai.stored import paging
from jobs.faces.openai.views import job_headers, model_not_found
from jobs.jobview import JobView
from jobs.models import StoredResponse
from jobs.paging import UnknownCursor
from jobs.placement import Placement
from jobs.responses.events import response_object
from jobs.responses.store import input_page
from jobs.selectors import engine_lookup, job_for_owner, job_wait_until_finished

KNOWN = create.GENERATION_PARAMS | {"tools", "tool_choice", "response_format", "stream", "store"}


def _previous_messages(user: User, previous_id: str) -> list[dict[str, Any]]:
    """The conversation of a stored response: its messages (without its instructions, which do
    not carry over) and its output."""
    job_id = responses.job_id_of(previous_id)
    query = StoredResponse.objects.select_related("job", "job__engine")
    stored = None if job_id is None else query.filter(job_id=job_id, owner_id=user.pk).first()
    if stored is None:
        raise FaceError(
            f"Previous response with id '{previous_id}' not found.",
            status=404,
            param="previous_response_id",
            code="previous_response_not_found",
        )
    job = stored.job
    messages = list(job.request.get("messages") or [])
    if job.options.get("instructions"):
        messages = messages[1:]
    output = response_object(job, job.chunks or [])["output"]
    return messages + create.chat_messages(output)


def request_of(user: User, asked: create.ResponseCreate) -> tuple[GenerationRequest, dict[str, Any]]:
    """The job's request and options: the conversation so far (a previous response's), the
    instructions, then the input (the view's, and a Batch API line's)."""
    messages = list(asked.messages)
    if asked.previous_response_id is not None:
        messages = _previous_messages(user, asked.previous_response_id) + messages
    if asked.options.get("instructions"):
        messages.insert(0, {"role": "system", "content": asked.options["instructions"]})
    request, job_options = build_request(
        messages, asked.params, known=KNOWN, max_tokens_aliases=create.MAX_TOKENS_ALIASES
    )
    return request, {**job_options.to_dict(), **asked.options}


@db_work
def _start(
    user: User, engines: frozenset[str], asked: create.ResponseCreate, placement: Placement
) -> JobView:
    """Resolve the conversation and the engine, refuse what it cannot honour, create the job:
    one thread hop for all of it."""
    request, options = request_of(user, asked)
    engine = engine_lookup(asked.model)
    if engine is None:
        raise model_not_found(asked.model)
    try:
        return services.job_start(
            owner=user, engine=engine, request=request, options=options, face=responses.FACE, engines=engines,
            placement=placement,
        )  # fmt: skip
    except services.JobRefused as refused:
        # Named as this endpoint's request names it (max_output_tokens, not max_tokens).
        refused.param = create.PARAM_NAMES.get(refused.param, refused.param)
        raise


async def _owned(user: User, value: str, *, live: bool = True) -> JobView:
    """The caller's response: a job of this face that is running and to be stored, or whose
    stored response exists (deleted ones and `store: false` ones are gone once they end)."""
    job = await job_for_owner(responses.job_id_of(value), user.pk, live=live)
    if job is not None and job.face == responses.FACE:
        if not job.is_finished and job.options.get("store"):
            return job
        if job.is_finished and await StoredResponse.objects.filter(job_id=job.pk).aexists():
            return job
    raise not_found(f"Response with id '{value}' not found.")


async def _object(job: JobView) -> dict[str, Any]:
    chunks: list[ChunkDict] | None = (
        job.chunks if job.is_finished else await chunklog.read_since(str(job.pk), 0)
    )
    return response_object(job, chunks or [])


def _stream(job: JobView, starting_after: int = -1) -> HttpResponseBase:
    return common_sse.stream(sse.events(job, starting_after), job_headers(job))


async def _wait(job: JobView) -> JsonResponse:
    headers = job_headers(job)  # before the wait: the job read after it is not marked replayed
    job = await job_wait_until_finished(job, timeout=settings.SPOOL.web.sync_wait_seconds)
    if not job.is_finished:
        raise FaceError(
            f"The response is still running after {settings.SPOOL.web.sync_wait_seconds:g} s; "
            f"retrieve it as {responses.response_id(job.pk)}.",
            status=504,
            code="timeout",
            retry=False,
            headers=headers,
        )
    return JsonResponse(await _object(job), headers=headers)


def _json(body: dict[str, Any], job: JobView) -> JsonResponse:
    return JsonResponse(body, headers=job_headers(job))


class Responses(OpenAIView):
    @shapes.create_schema
    async def post(self, request: Request) -> HttpResponseBase:
        user, key = caller(request), idempotency_key(request)
        asked = create.parse_create(self.json_body(request), id_seed=f"{user.pk}:{key}" if key else None)
        placement = placement_of(request, waiting=not asked.background, priority=asked.priority)
        job = await _start(user, engines_of(request.auth), asked, placement)
        if asked.stream:
            return _stream(job)
        if asked.background:
            return _json(await _object(job), job)
        return await _wait(job)


class Response(OpenAIView):
    @shapes.retrieve_schema
    async def get(self, request: Request, response_id: str) -> HttpResponseBase:
        query = check(shapes.RetrieveQuery, query_values(request))
        job = await _owned(caller(request), response_id)
        if query.get("stream"):
            return _stream(job, query.get("starting_after", -1))
        if query.get("starting_after") is not None:
            raise FaceError(
                "The 'starting_after' parameter is only allowed when 'stream' is true.",
                param="starting_after",
                code="invalid_value",
            )
        return _json(await _object(job), job)

    @shapes.delete_schema
    async def delete(self, request: Request, response_id: str) -> HttpResponse:
        job = await _owned(caller(request), response_id)
        if not job.is_finished:
            # Its stored response is written when it ends: end it first.
            job = await _cancelled(job)
        await StoredResponse.objects.filter(job_id=job.pk).adelete()
        return JsonResponse({"id": response_id, "object": "response", "deleted": True})


async def _cancelled(job: JobView) -> JobView:
    await db_work(services.job_cancel)(job.id)
    return await job_wait_until_finished(job, timeout=settings.SPOOL.web.long_poll_seconds * 5)


class Cancel(OpenAIView):
    @shapes.cancel_schema
    async def post(self, request: Request, response_id: str) -> HttpResponse:
        job = await _owned(caller(request), response_id)
        if not job.is_finished:
            job = await _cancelled(job)
        return _json(await _object(job), job)


class InputItems(OpenAIView):
    @shapes.input_items_schema
    async def get(self, request: Request, response_id: str) -> HttpResponse:
        query = query_values(request)
        job = await _owned(caller(request), response_id, live=False)
        # OpenAI lists input items newest first unless asked otherwise.
        page_query = {**paging.read(query), "order": query.get("order") or "desc"}
        try:
            page = input_page(job, **page_query)
        except UnknownCursor as exc:
            raise paging.unknown_after(str(exc)) from None
        return paging.respond(page, lambda item: item)
