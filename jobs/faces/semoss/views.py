"""The SEMOSS face's endpoints (base path /Monolith/api). Thin: parse, call, render."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qsl

import orjson
from django.conf import settings
from django.contrib.auth import alogin, alogout
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request

from jobs import jsonbody, services
from jobs.access import engines_of, key_grant
from jobs.dbwork import db_work
from jobs.faces.common.auth import (
    SESSION_KEY_ID,
    ApiKeyAuthentication,
    ReadTokenAuthentication,
    SemossSessionAuthentication,
)
from jobs.faces.common.embeddings import json_answer
from jobs.faces.common.errors import FaceError, not_allowed
from jobs.faces.common.placement import mark_replayed, placement_of
from jobs.faces.common.schema import SemossError, errors, idempotency_headers
from jobs.faces.common.views import FaceView, caller, readable, readable_by
from jobs.faces.semoss import reactors, render
from jobs.faces.semoss import serializers as shapes
from jobs.faces.semoss.partial import partial_text
from jobs.models import Job
from jobs.protocols.pixel import PixelError, parse_pixel, validate_pixel
from jobs.selectors import job_chunks_since, job_for_owner, job_page_for_owner, job_wait_until_finished

LLM = "LLM"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
JSON = "application/json"


def semoss_schema(
    operation_id: str,
    summary: str,
    form: type,
    answer: type,
    refused: type | None = None,
    starts_jobs: bool = False,
) -> Any:
    """The document of a SEMOSS POST endpoint: its form (or the same as JSON) and its answers.
    One that starts a job takes an Idempotency-Key."""
    statuses = (409, 413, 415) if starts_jobs else (413, 415)
    responses: dict[Any, Any] = {200: answer, **errors(*statuses, envelope=SemossError)}
    if refused is not None:
        responses[400] = OpenApiResponse(refused, description="Refused: the answer says why.")
    return extend_schema(
        operation_id=operation_id,
        summary=summary,
        request={FORM: form, JSON: form},
        responses=responses,
        parameters=idempotency_headers() if starts_jobs else None,
    )


class SemossView(FaceView):
    # Keys first (a wrong one is refused even with a session), then the SDK's login session.

    face = "semoss"
    authentication_classes = [ApiKeyAuthentication, SemossSessionAuthentication]
    parser_classes = [FormParser, MultiPartParser, JSONParser]  # read by semoss_form, with its own rules


def semoss_form(request: HttpRequest) -> dict[str, Any]:
    """Form-encoded as the SDK sends it; JSON accepted too. SEMOSS form values are text and keep
    their own rules (the pixel parser reads them), so no serializer coerces them here."""
    if request.content_type == JSON:
        try:
            body = jsonbody.loads(request.body or b"{}")
        except ValueError as exc:
            raise FaceError(f"The JSON body could not be parsed ({exc}): send a JSON object.") from None
        if not isinstance(body, dict):
            raise FaceError("The JSON body must be an object.")
        return body
    if request.content_type not in (FORM, MULTIPART) and request.body:
        raise FaceError(
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
            raise FaceError("The form body is not valid UTF-8 (after percent-decoding).") from None
    try:
        return request.POST.dict()
    except RequestDataTooBig:
        raise  # the middleware's 413
    except (SuspiciousOperation, MultiPartParserError) as exc:  # too many fields, bad multipart
        raise FaceError(f"The form body could not be read: {exc}") from None


class Config(SemossView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(operation_id="config", summary="loginDetails when authenticated (and the session login).",
                   responses={200: shapes.ConfigAnswer, **errors(envelope=SemossError)})  # fmt: skip
    async def get(self, request: Request) -> JsonResponse:
        body: dict[str, Any] = {"csrf": False, "version": "spool-0.1"}
        user, grant = None, None
        for authenticator in (ApiKeyAuthentication(), SemossSessionAuthentication()):
            try:
                found = await authenticator.authenticate(request)
            except AuthenticationFailed:
                break  # a wrong, revoked or expired key: not logged in, nor by a session either
            if found is not None:
                user, grant = found[0], key_grant(found[1])
                break
        if grant is not None and not grant.allows_face(self.face):
            raise not_allowed("This API key may not use the semoss API.", "face_not_allowed")
        if user is not None:
            if request.headers.get("Authorization") and grant is not None:
                # The SDK logs in once with its keys, then sends the session cookie this sets;
                # the session names the key, so the key's limits and revocation hold for it.
                await alogin(request._request, user, backend="django.contrib.auth.backends.ModelBackend")
                request._request.session[SESSION_KEY_ID] = grant.key_id
            body["loginDetails"] = {"SPOOL": user.get_username()}
        return JsonResponse(body)


class LogoutAll(SemossView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(operation_id="logoutAll", summary="End the session.", request=None,
                   responses={200: shapes.LoggedOut, **errors(envelope=SemossError)})  # fmt: skip
    async def get(self, request: Request) -> JsonResponse:
        await alogout(request._request)
        return JsonResponse({"success": True})

    @extend_schema(operation_id="logoutAllPost", summary="End the session.", request=None,
                   responses={200: shapes.LoggedOut, **errors(envelope=SemossError)})  # fmt: skip
    async def post(self, request: Request) -> JsonResponse:
        return await self.get(request)


def _error_return(insight_id: str, expression: str, message: str) -> JsonResponse:
    return JsonResponse(render.pixel_return(insight_id, expression, message, error=True))


class RunPixel(SemossView):
    @semoss_schema(
        "runPixel",
        "Run a pixel and wait for its output.",
        shapes.PixelForm,
        shapes.PixelReturn,
        starts_jobs=True,
    )
    async def post(self, request: Request) -> HttpResponse:
        return await run_pixel(request)


async def run_pixel(request: Request) -> HttpResponse:
    user, engines = caller(request), engines_of(request.auth)
    form = semoss_form(request._request)
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
            started = await reactors.start_llm(user, engines, pixel, placement_of(request, waiting=True))
            job = await job_wait_until_finished(started, timeout=settings.SPOOL.web.sync_wait_seconds)
            if not job.is_finished:
                answer = _error_return(insight_id, expression, f"Job {job.pk} is still running; poll it.")
            elif job.status != Job.Status.SUCCEEDED:
                answer = _error_return(insight_id, expression, job.error or "The job failed.")
            else:
                answer = JsonResponse(render.pixel_return(insight_id, expression, render.llm_output(job)))
            return mark_replayed(answer, started)
        elif pixel.reactor == "GetModelAPI":
            output = await reactors.model_api(engines, pixel)
        elif pixel.reactor == "Embeddings":
            # Answered with orjson: the vectors are float32 rows, which Django's encoder cannot write.
            output = await reactors.embeddings(user, engines, pixel)
            return json_answer(render.pixel_return(insight_id, expression, output))
        else:
            output = await reactors.room_messages(user, pixel)
    except (PixelError, reactors.ReactorError) as exc:
        return _error_return(insight_id, expression, str(exc))
    return JsonResponse(render.pixel_return(insight_id, expression, output))


class RunPixelAsync(SemossView):
    @semoss_schema(
        "runPixelAsync",
        "Start an LLM pixel; answers its job id at once.",
        shapes.PixelForm,
        shapes.JobStarted,
        refused=shapes.JobRefused,
        starts_jobs=True,
    )
    async def post(self, request: Request) -> JsonResponse:
        return await run_pixel_async(request)


async def run_pixel_async(request: Request) -> JsonResponse:
    form = semoss_form(request._request)
    expression = str(form.get("expression", ""))
    try:
        pixel = parse_pixel(expression)
        validate_pixel(pixel)
        if pixel.reactor != LLM:
            raise reactors.ReactorError(f"runPixelAsync runs LLM pixels; send {pixel.reactor} to runPixel.")
        placement = placement_of(request, waiting=True)
        job = await reactors.start_llm(caller(request), engines_of(request.auth), pixel, placement)
    except (PixelError, reactors.ReactorError) as exc:
        body = render.pixel_return(str(form.get("insightId") or ""), expression, str(exc), error=True)
        return JsonResponse({"jobId": None, "errorMessage": str(exc), **body}, status=400)
    return mark_replayed(JsonResponse({"jobId": str(job.pk)}), job)


def _unknown() -> JsonResponse:
    return JsonResponse({"message": [], "status": render.UNKNOWN})


def _cursor(form: dict[str, Any]) -> int | None | str:
    raw = form.get("cursor")
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        return "cursor must be a non-negative integer"
    return value if value >= 0 else "cursor must be a non-negative integer"


class JobReader(SemossView):
    # Reads one job: a read token (?token=) for that job will do as well as a key or a session.
    authentication_classes = [ApiKeyAuthentication, ReadTokenAuthentication, SemossSessionAuthentication]
    # Each reads the job (job_for_owner) before anything else.
    counts_with_read = True


class PixelJobStreaming(JobReader):
    @semoss_schema(
        "pixelJobStreaming",
        "The chunks not yet handed out (or those after `cursor`).",
        shapes.StreamingForm,
        shapes.Streaming,
        refused=SemossError,
    )
    async def post(self, request: Request) -> HttpResponse:
        return await pixel_job_streaming(request)


async def pixel_job_streaming(request: Request) -> HttpResponse:
    return await job_streaming(semoss_form(request._request), caller(request).pk, request.auth)


async def job_streaming(form: dict[str, Any], owner_id: int, auth: Any) -> HttpResponse:
    """pixelJobStreaming's answer to an authenticated caller: the view's, and the poll's fast
    path's (jobs/faces/semoss/fastpoll.py)."""
    job_id = readable_by(auth, form.get("jobId"))
    cursor = _cursor(form)
    if isinstance(cursor, str):
        job = await job_for_owner(job_id, owner_id)
        if job is None:
            return _unknown()
        return JsonResponse({"message": [], "status": render.status(job), "errorMessage": cursor}, status=400)
    found = await job_page_for_owner(
        job_id, owner_id, cursor=cursor, reader="semoss-stream", wait=settings.SPOOL.web.long_poll_seconds
    )
    if found is None:
        return _unknown()
    job, page = found
    body = {
        "message": render.page_messages(str(job.pk), page),
        "status": render.status(job, page),
        "cursor": page.next_cursor,
    }
    return HttpResponse(orjson.dumps(body), content_type=JSON)


class Partial(JobReader):
    @semoss_schema(
        "partial", "The text since the last poll, and all of it.", shapes.JobForm, shapes.PartialPoll
    )
    async def post(self, request: Request) -> HttpResponse:
        return await partial(request)


async def partial(request: Request) -> HttpResponse:
    return await job_partial(semoss_form(request._request), caller(request).pk, request.auth)


async def job_partial(form: dict[str, Any], owner_id: int, auth: Any) -> HttpResponse:
    """partial's answer to an authenticated caller: the view's, and the poll's fast path's (the
    ai-server-sdk's stream_ask polls it once per piece of text)."""
    found = await partial_text(
        readable_by(auth, form.get("jobId")), owner_id, wait=settings.SPOOL.web.long_poll_seconds
    )
    if found is None:
        return JsonResponse({"message": {"new": "", "total": ""}, "status": render.UNKNOWN})
    new, total, status = found
    return JsonResponse({"message": {"new": new, "total": total}, "status": status})


class Result(JobReader):
    @semoss_schema("result", "The finished job's pixel output.", shapes.ResultForm, shapes.PixelResult)
    async def post(self, request: Request) -> JsonResponse:
        return await result(request)


async def result(request: Request) -> JsonResponse:
    form = semoss_form(request._request)
    job = await job_for_owner(readable(request, form.get("jobId")), caller(request).pk)
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


class Status(JobReader):
    @semoss_schema("status", "The job's status.", shapes.JobForm, shapes.JobStatus)
    async def post(self, request: Request) -> JsonResponse:
        return await status(request)


async def status(request: Request) -> JsonResponse:
    job = await job_for_owner(
        readable(request, semoss_form(request._request).get("jobId")), caller(request).pk
    )
    if job is None:
        return JsonResponse({"status": render.UNKNOWN})
    page = await job_chunks_since(job, cursor=0, reader="status", wait=0) if not job.is_finished else None
    return JsonResponse({"jobId": str(job.pk), "status": render.status(job, page)})


class Terminate(SemossView):
    @semoss_schema("terminate", "Cancel; the output so far is kept.", shapes.JobForm, shapes.JobStatus)
    async def post(self, request: Request) -> JsonResponse:
        return await terminate(request)


async def terminate(request: Request) -> JsonResponse:
    job = await job_for_owner(semoss_form(request._request).get("jobId"), caller(request).pk)
    if job is None:
        return JsonResponse({"status": render.UNKNOWN})
    if not job.is_finished:
        await db_work(services.job_cancel)(job.id)
        job = await job_wait_until_finished(job, timeout=settings.SPOOL.web.long_poll_seconds * 5)
    return JsonResponse({"jobId": str(job.pk), "status": render.status(job)})
