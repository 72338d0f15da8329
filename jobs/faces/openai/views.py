"""POST /v1/chat/completions (both modes, one job per request), cancel, and /v1/models."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from engine.types import UnsupportedParameter
from jobs import services
from jobs.faces.openai import render, sse, stored
from jobs.faces.openai.chat import ChatCreate, media_part, parse_create
from jobs.faces.openai.errors import ApiError, job_error, not_found
from jobs.faces.openai.http import api_view, json_body
from jobs.models import Engine, Job
from jobs.selectors import engine_find, job_for_owner, job_wait_until_finished

FACE = "openai"
JOB_HEADER = "X-Spool-Job-Id"


def _model_not_found(model: str) -> ApiError:
    return ApiError(
        f"The model `{model}` does not exist or you do not have access to it.",
        status=404,
        code="model_not_found",
        retry=False,
    )


@sync_to_async
def _start(user: AbstractBaseUser, engine: Engine, chat: ChatCreate) -> Job:
    """Refuse what the engine cannot honour, then create the job (queued once committed)."""
    media = media_part(chat.request.messages)
    # Only an upstream server can read images, audio or files; the built-in model reads text.
    if media is not None and engine.kind != Engine.Kind.OPENAI:
        param, kind = media
        raise ApiError(
            f"Engine '{engine.name}' reads text only; it cannot take '{kind}' content parts.",
            param=param,
            code="unsupported_parameter",
        )
    try:
        return services.job_create(
            owner=user, engine=engine, request=chat.request, options=chat.options, face=FACE
        )
    except UnsupportedParameter as exc:
        raise ApiError(services.refusal(engine, exc), param=exc.param, code="unsupported_parameter") from None


def _error_of(job: Job) -> ApiError:
    last = (job.chunks or [{}])[-1]
    if last.get("type") == "error":
        return job_error(last["data"])
    return job_error({"code": job.finish_reason or "engine_error", "message": job.error})


async def _stream(job: Job) -> HttpResponse:
    chunks = await sse.prefetch(job, sse.KEEPALIVE_SECONDS)
    failure = sse.failed_silently(chunks)
    if failure is not None:
        error = job_error(failure)
        error.headers[JOB_HEADER] = str(job.pk)
        raise error
    response = StreamingHttpResponse(sse.events(job, chunks), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx would otherwise buffer the whole stream
    response[JOB_HEADER] = str(job.pk)
    return response


async def _wait(job: Job) -> HttpResponse:
    job = await job_wait_until_finished(job, timeout=settings.SPOOL["SYNC_WAIT_SECONDS"])
    if not job.is_finished:
        error = ApiError(
            f"The generation is still running after {settings.SPOOL['SYNC_WAIT_SECONDS']:g} s; "
            f"its job id is in the {JOB_HEADER} header.",
            status=504,
            code="timeout",
            retry=False,
        )
    elif job.status == Job.Status.SUCCEEDED:
        response = JsonResponse(render.completion(job))
        response[JOB_HEADER] = str(job.pk)
        return response
    else:
        error = _error_of(job)
    error.headers[JOB_HEADER] = str(job.pk)
    raise error


async def _create(request: HttpRequest, user: AbstractBaseUser) -> HttpResponse:
    chat = parse_create(json_body(request))
    engine = await engine_find(chat.model)
    if engine is None:
        raise _model_not_found(chat.model)
    job = await _start(user, engine, chat)
    return await (_stream(job) if chat.stream else _wait(job))


@api_view("GET", "POST")
async def chat_completions(request: HttpRequest, user: AbstractBaseUser) -> HttpResponse:
    """POST creates a completion; GET lists stored ones (same path, as in OpenAI's API)."""
    if request.method == "GET":
        return await stored.list_completions(request, user)
    return await _create(request, user)


@api_view("POST")
async def cancel(request: HttpRequest, user: AbstractBaseUser, completion_id: str) -> HttpResponse:
    """Cancel a running completion; its partial output is kept. Twice is harmless."""
    job = await job_for_owner(render.job_id_of(completion_id), user.pk)
    if job is None:
        raise not_found(f"No chat completion found with id '{completion_id}'.")
    if not job.is_finished:
        await sync_to_async(services.job_cancel)(job=job)
        job = await job_wait_until_finished(job, timeout=settings.SPOOL["LONG_POLL_SECONDS"] * 5)
    body: dict[str, Any] = {**render.completion(job), "status": job.status}
    return JsonResponse(body)


def _model(engine: Engine) -> dict[str, Any]:
    return {
        "id": engine.name,
        "object": "model",
        "created": int(engine.created_at.timestamp()),
        "owned_by": "spool",
    }


@api_view("GET")
async def models(request: HttpRequest, user: AbstractBaseUser) -> HttpResponse:
    engines = [e async for e in Engine.objects.filter(is_active=True).order_by("name")]
    return JsonResponse({"object": "list", "data": [_model(e) for e in engines]})


@api_view("GET")
async def model(request: HttpRequest, user: AbstractBaseUser, model_id: str) -> HttpResponse:
    engine = await engine_find(model_id)
    if engine is None:
        raise _model_not_found(model_id)
    return JsonResponse(_model(engine))
