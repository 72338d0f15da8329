"""POST /v1/chat/completions (both modes, one job per request), cancel, and /v1/models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpResponse, HttpResponseBase, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request

from jobs import services
from jobs.access import engine_allowed, engines_of
from jobs.dbwork import db_work
from jobs.faces.common import sse as common_sse
from jobs.faces.common.errors import FaceError, job_error
from jobs.faces.common.placement import placement_of, replay_headers
from jobs.faces.common.schema import METADATA_FILTER, errors, idempotency_headers
from jobs.faces.common.views import caller
from jobs.faces.openai import serializers as shapes
from jobs.faces.openai import sse, stored, text
from jobs.faces.openai.base import OpenAIView
from jobs.faces.openai.chat import ChatCreate, parse_create
from jobs.faces.openai.errors import not_found
from jobs.faces.openai.legacy import TextCreate, parse_text_create
from jobs.jobview import JobView
from jobs.models import Engine, Job
from jobs.placement import Placement
from jobs.protocols import openai_chat as render
from jobs.selectors import engine_find, engine_lookup, job_for_owner, job_wait_until_finished

FACE = "openai"
TEXT_FACE = "completions"  # the legacy /v1/completions: its own ids (cmpl-) and objects
JOB_HEADER = "X-Spool-Job-Id"


def model_not_found(model: str) -> FaceError:
    return FaceError(
        f"The model `{model}` does not exist or you do not have access to it.",
        status=404,
        code="model_not_found",
        retry=False,
    )


@db_work
def _start(
    user: User, engines: frozenset[str], create: ChatCreate | TextCreate, face: str, placement: Placement
) -> JobView:
    """Find the engine and create the job (queued once committed): one thread hop for all of
    it. What job_create refuses is answered by the face's error renderer."""
    engine = engine_lookup(create.model)
    if engine is None:
        raise model_not_found(create.model)
    return services.job_start(
        owner=user,
        engine=engine,
        request=create.request,
        options=create.options,
        face=face,
        engines=engines,
        placement=placement,
    )


def job_headers(job: JobView) -> dict[str, str]:
    """The headers of every answer to a create: the job's id, and whether it is a replay."""
    return {JOB_HEADER: str(job.pk), **replay_headers(job)}


def _error_of(job: JobView) -> FaceError:
    last = job.chunks[-1] if job.chunks else None
    if last is not None and last["type"] == "error":
        return job_error(last["data"])
    return job_error({"code": job.finish_reason or "engine_error", "message": job.error})


async def _stream(job: JobView, renderer_of: Callable[[JobView], sse.Renderer]) -> HttpResponseBase:
    headers = job_headers(job)
    chunks = await sse.prefetch(job, common_sse.KEEPALIVE_SECONDS)
    failure = sse.failed_silently(chunks)
    if failure is not None:
        error = job_error(failure)
        error.headers.update(headers)
        raise error
    return common_sse.stream(sse.events(job, chunks, renderer_of), headers)


async def _wait(job: JobView, answer: Callable[[JobView], dict[str, Any]]) -> HttpResponse:
    headers = job_headers(job)  # before the wait: the job read after it is not marked replayed
    job = await job_wait_until_finished(job, timeout=settings.SPOOL.web.sync_wait_seconds)
    if not job.is_finished:
        error = FaceError(
            f"The generation is still running after {settings.SPOOL.web.sync_wait_seconds:g} s; "
            f"its job id is in the {JOB_HEADER} header.",
            status=504,
            code="timeout",
            retry=False,
        )
    elif job.status == Job.Status.SUCCEEDED:
        return JsonResponse(answer(job), headers=headers)
    else:
        error = _error_of(job)
    error.headers.update(headers)
    raise error


OFFLINE = "spool-offline"
JOB_ID_HEADER = OpenApiParameter(
    JOB_HEADER, OpenApiTypes.UUID, OpenApiParameter.HEADER, response=[200], required=True,
    description="The job behind the completion.",
)  # fmt: skip
CREATE_EXAMPLES = [
    OpenApiExample(
        "plain",
        summary="A short completion.",
        value={"model": OFFLINE, "messages": [{"role": "user", "content": "Tell me of the king."}],
               "max_completion_tokens": 8, "seed": 7},
        request_only=True,
    ),
    OpenApiExample(
        "streamed",
        summary="Streamed, with usage at the end.",
        value={"model": OFFLINE, "messages": [{"role": "user", "content": "Speak."}],
               "max_completion_tokens": 8, "stream": True, "stream_options": {"include_usage": True}},
        request_only=True,
    ),
    OpenApiExample(
        "stored",
        summary="Two choices with log-probabilities, stored with metadata.",
        value={"model": OFFLINE,
               "messages": [{"role": "user", "content": [{"type": "text", "text": "The sea."}]}],
               "max_completion_tokens": 6, "n": 2, "logprobs": True, "top_logprobs": 2, "store": True,
               "metadata": {"suite": "openapi"}},
        request_only=True,
    ),
]  # fmt: skip


def _create_schema(
    operation_id: str, summary: str, body: type, answer: type, event: type, examples: list[OpenApiExample]
) -> Callable[[Any], Any]:
    """The document of a create view: JSON answer, or data-only SSE of chunk objects."""
    events = (
        f"With stream: true, data-only server-sent events: each a {answer.__name__} chunk, or an Error "
        "envelope when the generation fails mid-stream; then `data: [DONE]`. `: keep-alive` comments "
        "come during silences."
    )
    return extend_schema(
        operation_id=operation_id,
        summary=summary,
        request=body,
        responses={
            (200, "application/json"): OpenApiResponse(answer, description="The completion."),
            (200, "text/event-stream"): OpenApiResponse(event, description=events),
            **errors(404, 409, 413, 502, 504),
        },
        parameters=[JOB_ID_HEADER, *idempotency_headers()],
        examples=examples,
    )


class ChatCompletions(OpenAIView):
    """POST creates a completion; GET lists stored ones (same path, as in OpenAI's API)."""

    @_create_schema(
        "createChatCompletion",
        "Run a completion as one job: wait for it, or stream it (stream: true).",
        shapes.ChatCompletionCreate,
        shapes.ChatCompletion,
        shapes.ChatCompletionEvent,
        CREATE_EXAMPLES,
    )
    async def post(self, request: Request) -> HttpResponseBase:
        chat = parse_create(self.json_body(request))
        placement = placement_of(request, waiting=True, priority=chat.priority)
        job = await _start(caller(request), engines_of(request.auth), chat, FACE, placement)
        return await (_stream(job, render.StreamRenderer) if chat.stream else _wait(job, render.completion))

    @extend_schema(
        operation_id="listChatCompletions",
        summary="The caller's stored completions, oldest first by default.",
        parameters=[
            shapes.ListQuery,
            METADATA_FILTER,
        ],  # fmt: skip
        responses={200: shapes.ChatCompletionList, **errors()},
    )
    async def get(self, request: Request) -> HttpResponse:
        return await stored.list_completions(request, caller(request))


class Cancel(OpenAIView):
    @extend_schema(
        operation_id="cancelChatCompletion",
        summary="Stop a running completion; its output so far is kept. Twice is harmless.",
        request=None,
        responses={200: shapes.CancelledChatCompletion, **errors(404)},
    )
    async def post(self, request: Request, completion_id: str) -> HttpResponse:
        """Cancel a running completion; its partial output is kept. Twice is harmless."""
        job = await job_for_owner(render.job_id_of(completion_id), caller(request).pk)
        return await _cancel(job, f"No chat completion found with id '{completion_id}'.", render.completion)


async def _cancel(
    job: JobView | None, unknown: str, answer: Callable[[JobView], dict[str, Any]]
) -> HttpResponse:
    if job is None:
        raise not_found(unknown)
    if not job.is_finished:
        await db_work(services.job_cancel)(job.id)
        job = await job_wait_until_finished(job, timeout=settings.SPOOL.web.long_poll_seconds * 5)
    return JsonResponse({**answer(job), "status": job.status})


TEXT_EXAMPLES = [
    OpenApiExample(
        "plain",
        summary="Two continuations of one prompt.",
        value={"model": OFFLINE, "prompt": "The king", "max_tokens": 8, "n": 2, "seed": 7},
        request_only=True,
    ),
    OpenApiExample(
        "streamed",
        summary="Two prompts streamed, with log-probabilities and usage at the end.",
        value={"model": OFFLINE, "prompt": ["The sea", "The king"], "max_tokens": 6, "logprobs": 2,
               "stream": True, "stream_options": {"include_usage": True}},
        request_only=True,
    ),
    OpenApiExample(
        "echo",
        summary="The prompt put back before the text.",
        value={"model": OFFLINE, "prompt": "Once upon a time", "echo": True, "max_tokens": 5,
               "stop": ["\n"]},
        request_only=True,
    ),
]  # fmt: skip


class TextCompletions(OpenAIView):
    @_create_schema(
        "createCompletion",
        "OpenAI's legacy completions: continue each prompt as is, as one job; wait or stream.",
        shapes.CompletionCreate,
        shapes.TextCompletion,
        shapes.TextCompletionEvent,
        TEXT_EXAMPLES,
    )
    async def post(self, request: Request) -> HttpResponseBase:
        create = parse_text_create(self.json_body(request))
        placement = placement_of(request, waiting=True, priority=create.priority)
        job = await _start(caller(request), engines_of(request.auth), create, TEXT_FACE, placement)
        if create.stream:
            return await _stream(job, text.TextStreamRenderer)
        return await _wait(job, text.text_completion)


class TextCancel(OpenAIView):
    @extend_schema(
        operation_id="cancelCompletion",
        summary="Stop a running legacy completion; its output so far is kept. Twice is harmless.",
        request=None,
        responses={200: shapes.CancelledTextCompletion, **errors(404)},
    )
    async def post(self, request: Request, completion_id: str) -> HttpResponse:
        job = await job_for_owner(render.job_id_of(completion_id, text.ID_PREFIX), caller(request).pk)
        return await _cancel(job, f"No completion found with id '{completion_id}'.", text.text_completion)


def _model(engine: Engine) -> dict[str, Any]:
    return {
        "id": engine.name,
        "object": "model",
        "created": int(engine.created_at.timestamp()),
        "owned_by": "spool",
    }


class Models(OpenAIView):
    @extend_schema(operation_id="listModels", summary="The active engines the key may use, by name.",
                   responses={200: shapes.ModelList, **errors()})  # fmt: skip
    async def get(self, request: Request) -> HttpResponse:
        query = Engine.objects.filter(is_active=True).order_by("name")
        allowed = engines_of(request.auth)
        if allowed:
            query = query.filter(id__in=allowed)
        engines = [e async for e in query]
        return JsonResponse({"object": "list", "data": [_model(e) for e in engines]})


class Model(OpenAIView):
    @extend_schema(operation_id="getModel", summary="One engine, by name or id.",
                   responses={200: shapes.Model, **errors(404)})  # fmt: skip
    async def get(self, request: Request, model_id: str) -> HttpResponse:
        engine = await engine_find(model_id)
        # An engine the key may not use is not listed, so it is not found either.
        if engine is None or not engine_allowed(engines_of(request.auth), engine.pk):
            raise model_not_found(model_id)
        return JsonResponse(_model(engine))
