"""The SEMOSS face's endpoints (base path /Monolith/api). Thin: parse, call, render."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any
from urllib.parse import parse_qsl

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import alogin, alogout
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from jobs import jsonbody, services
from jobs.auth import request_user
from jobs.faces.semoss import reactors, render
from jobs.faces.semoss.partial import partial_text
from jobs.models import Job
from jobs.pixel import PixelError, parse_pixel, validate_pixel
from jobs.selectors import job_chunks_since, job_for_owner, job_wait_until_finished

View = Callable[..., Awaitable[JsonResponse]]
LLM = "LLM"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
JSON = "application/json"


class BadBody(Exception):
    """A body that cannot be read as a form or a JSON object; answered {"errorMessage"}."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def _form(request: HttpRequest) -> dict[str, Any]:
    """Form-encoded as the SDK sends it; JSON accepted too."""
    if request.content_type == JSON:
        try:
            body = jsonbody.loads(request.body or b"{}")
        except ValueError as exc:
            raise BadBody(f"The JSON body could not be parsed ({exc}): send a JSON object.") from None
        if not isinstance(body, dict):
            raise BadBody("The JSON body must be an object.")
        return body
    if request.content_type not in (FORM, MULTIPART) and request.body:
        raise BadBody(
            f"Unsupported Content-Type {request.content_type or 'none'!r}: send the parameters "
            f"form-encoded ({FORM}) or as a JSON object ({JSON}).",
            status=415,
        )
    if request.content_type == FORM:
        # Django would quietly swap bytes that are not UTF-8 for U+FFFD (or read the whole
        # body as Latin-1), and run a pixel nobody wrote.
        try:
            parse_qsl(request.body.decode(), keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            raise BadBody("The form body is not valid UTF-8 (after percent-decoding).") from None
    try:
        return request.POST.dict()
    except RequestDataTooBig:
        raise  # the middleware's 413
    except (SuspiciousOperation, MultiPartParserError) as exc:  # too many fields, bad multipart
        raise BadBody(f"The form body could not be read: {exc}") from None


def authenticated(view: View) -> View:
    @wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        user = await request_user(request)
        if user is None:
            return JsonResponse(
                {"errorMessage": "Not authenticated: send Basic access_key:secret_key or log in."},
                status=401,
            )
        try:
            return await view(request, user, *args, **kwargs)
        except BadBody as exc:
            return JsonResponse({"errorMessage": exc.message}, status=exc.status)

    return csrf_exempt(wrapper)


@csrf_exempt
@require_GET
async def config(request: HttpRequest) -> JsonResponse:
    body: dict[str, Any] = {"csrf": False, "version": "spool-0.1"}
    user = await request_user(request)
    if user is not None:
        if request.headers.get("Authorization"):
            # The SDK logs in once with its keys, then sends the session cookie this sets.
            await alogin(request, user, backend="django.contrib.auth.backends.ModelBackend")
        body["loginDetails"] = {"SPOOL": user.get_username()}
    return JsonResponse(body)


@csrf_exempt
async def logout_all(request: HttpRequest) -> JsonResponse:
    await alogout(request)
    return JsonResponse({"success": True})


def _error_return(insight_id: str, expression: str, message: str) -> JsonResponse:
    return JsonResponse(render.pixel_return(insight_id, expression, message, error=True))


@require_POST
@authenticated
async def run_pixel(request: HttpRequest, user: Any) -> JsonResponse:
    form = _form(request)
    expression = str(form.get("expression", ""))
    insight_id = str(form.get("insightId") or "")
    if insight_id in ("", "new"):
        insight_id = str(uuid.uuid4())
    try:
        pixel = parse_pixel(expression)
        validate_pixel(pixel)
        if pixel.reactor == "META":
            output: Any = True
        elif pixel.reactor == LLM:
            job = await reactors.start_llm(user, pixel)
            job = await job_wait_until_finished(job, timeout=settings.SPOOL["SYNC_WAIT_SECONDS"])
            if not job.is_finished:
                return _error_return(insight_id, expression, f"Job {job.pk} is still running; poll it.")
            if job.status != Job.Status.SUCCEEDED:
                return _error_return(insight_id, expression, job.error or "The job failed.")
            output = render.llm_output(job)
        elif pixel.reactor == "GetModelAPI":
            output = await reactors.model_api(pixel)
        else:
            output = await reactors.room_messages(user, pixel)
    except (PixelError, reactors.ReactorError) as exc:
        return _error_return(insight_id, expression, str(exc))
    return JsonResponse(render.pixel_return(insight_id, expression, output))


@require_POST
@authenticated
async def run_pixel_async(request: HttpRequest, user: Any) -> JsonResponse:
    form = _form(request)
    expression = str(form.get("expression", ""))
    try:
        pixel = parse_pixel(expression)
        validate_pixel(pixel)
        if pixel.reactor != LLM:
            raise reactors.ReactorError(f"runPixelAsync runs LLM pixels; send {pixel.reactor} to runPixel.")
        job = await reactors.start_llm(user, pixel)
    except (PixelError, reactors.ReactorError) as exc:
        body = render.pixel_return(str(form.get("insightId") or ""), expression, str(exc), error=True)
        return JsonResponse({"jobId": None, "errorMessage": str(exc), **body}, status=400)
    return JsonResponse({"jobId": str(job.pk)})


def _unknown() -> JsonResponse:
    return JsonResponse({"message": [], "status": render.UNKNOWN})


def _cursor(form: dict[str, Any]) -> int | None | str:
    raw = form.get("cursor")
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        return "cursor must be a non-negative integer"
    return value if value >= 0 else "cursor must be a non-negative integer"


@require_POST
@authenticated
async def pixel_job_streaming(request: HttpRequest, user: Any) -> JsonResponse:
    form = _form(request)
    job = await job_for_owner(form.get("jobId"), user.pk)
    if job is None:
        return _unknown()
    cursor = _cursor(form)
    if isinstance(cursor, str):
        return JsonResponse({"message": [], "status": render.status(job), "errorMessage": cursor}, status=400)
    page = await job_chunks_since(
        job, cursor=cursor, reader="semoss-stream", wait=settings.SPOOL["LONG_POLL_SECONDS"]
    )
    return JsonResponse(
        {
            "message": render.messages(page.chunks),
            "status": render.status(job, page),
            "cursor": page.next_cursor,
        }
    )


@require_POST
@authenticated
async def partial(request: HttpRequest, user: Any) -> JsonResponse:
    job = await job_for_owner(_form(request).get("jobId"), user.pk)
    if job is None:
        return JsonResponse({"message": {"new": "", "total": ""}, "status": render.UNKNOWN})
    new, total, status = await partial_text(job, wait=settings.SPOOL["LONG_POLL_SECONDS"])
    return JsonResponse({"message": {"new": new, "total": total}, "status": status})


@require_POST
@authenticated
async def result(request: HttpRequest, user: Any) -> JsonResponse:
    form = _form(request)
    job = await job_for_owner(form.get("jobId"), user.pk)
    if job is None:
        return _unknown()
    insight = str(form.get("insightId") or "")
    if not job.is_finished:
        return JsonResponse({"status": render.status(job), "pixelReturn": []})
    if job.status != Job.Status.SUCCEEDED:
        body = render.pixel_return(insight, "", job.error or "The job failed.", error=True)
    else:
        body = render.pixel_return(insight, "", render.llm_output(job))
    return JsonResponse({"status": render.status(job), **body})


@require_POST
@authenticated
async def status(request: HttpRequest, user: Any) -> JsonResponse:
    job = await job_for_owner(_form(request).get("jobId"), user.pk)
    if job is None:
        return JsonResponse({"status": render.UNKNOWN})
    page = await job_chunks_since(job, cursor=0, reader="status", wait=0) if not job.is_finished else None
    return JsonResponse({"jobId": str(job.pk), "status": render.status(job, page)})


@require_POST
@authenticated
async def terminate(request: HttpRequest, user: Any) -> JsonResponse:
    job = await job_for_owner(_form(request).get("jobId"), user.pk)
    if job is None:
        return JsonResponse({"status": render.UNKNOWN})
    if not job.is_finished:
        await sync_to_async(services.job_cancel)(job=job)
        job = await job_wait_until_finished(job, timeout=settings.SPOOL["LONG_POLL_SECONDS"] * 5)
    return JsonResponse({"jobId": str(job.pk), "status": render.status(job)})
