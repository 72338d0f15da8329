"""Renders what can go wrong around any view in the calling face's own shape, never as a 500:
an outage of Redis or Postgres (503), a caller over its limits (429), a body too large (413),
a NUL in the query string (400). Views' own errors go through the DRF exception handler
(jobs/faces/common/errors.py), which renders these the same way."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

from jobs import metrics
from jobs.idempotency import IdempotencyConflict, InvalidIdempotencyKey
from jobs.limits import LimitExceeded
from jobs.overload import is_overload
from jobs.scheduling.placement import InvalidPlacement

log = logging.getLogger(__name__)

OUTAGES = (redis.RedisError, OperationalError, InterfaceError)
HANDLED = (LimitExceeded, RequestDataTooBig, IdempotencyConflict, InvalidIdempotencyKey, InvalidPlacement)
API_PREFIXES = ("/Monolith/", "/v1/")
# A SEMOSS poller keeps polling on any status it does not know as terminal, which is what it
# should do during an outage or a rate limit.
UNAVAILABLE = "Unavailable"
# A pool busy past its timeout frees up within seconds; a client that waits this long before
# trying again does not add to the queue it met.
OVERLOAD_RETRY_AFTER = 2


def face_error(
    request: HttpRequest,
    status: int,
    message: str,
    *,
    code: str,
    retry_after: int | None = None,
    param: str | None = None,
) -> HttpResponse:
    if request.path.startswith("/Monolith/"):
        body: dict = {"errorMessage": message, "status": UNAVAILABLE, "message": []}
    else:
        kind = "server_error" if status >= 500 else "invalid_request_error"
        if status == 429:
            kind = "rate_limit_error"
        body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    response = JsonResponse(body, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def error_response(request: HttpRequest, exc: BaseException) -> HttpResponse | None:
    if isinstance(exc, LimitExceeded):
        return face_error(request, 429, exc.message, code=exc.code, retry_after=exc.retry_after)
    if isinstance(exc, IdempotencyConflict):
        response = face_error(request, 409, str(exc), code="idempotency_key_conflict")
        response["x-should-retry"] = "false"  # the openai SDK retries a 409 unless told not to
        return response
    if isinstance(exc, InvalidIdempotencyKey):
        return face_error(request, 400, str(exc), code="invalid_idempotency_key")
    if isinstance(exc, InvalidPlacement):
        return face_error(request, 400, str(exc), code="invalid_value", param=exc.param)
    if isinstance(exc, RequestDataTooBig):
        return face_error(request, 413, "The request body is too large.", code="request_too_large")
    if isinstance(exc, OUTAGES) and is_overload(exc):
        log.warning("overloaded on %s: %s", request.path, exc)
        message = "Spool is overloaded right now; try again shortly."
        return face_error(request, 503, message, code="server_overloaded", retry_after=OVERLOAD_RETRY_AFTER)
    if isinstance(exc, OUTAGES):
        log.warning("outage on %s: %s", request.path, exc)
        metrics.backend_error("redis" if isinstance(exc, redis.RedisError) else "postgres")
        which = "Redis" if isinstance(exc, redis.RedisError) else "the database"
        message = f"Spool cannot reach {which} right now; try again shortly."
        return face_error(request, 503, message, code="service_unavailable", retry_after=1)
    return None


def _nul_in_query(request: HttpRequest) -> bool:
    """A %00 in an API query string: Postgres text cannot hold NUL, so a filter with one matches
    nothing, and querying with it would raise. (Ids in paths are each view's: unknown, 404.)"""
    return request.path.startswith(API_PREFIXES) and "%00" in request.META.get("QUERY_STRING", "")


def _nul_response(request: HttpRequest) -> HttpResponse:
    message = "The query string holds a NUL character (%00), which no parameter value can contain."
    return face_error(request, 400, message, code="invalid_value")


class FaceErrorsMiddleware:
    async_capable = True
    sync_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse | None] | None:
        if iscoroutinefunction(self.get_response):  # as marked in __init__
            return self._acall(request)
        if _nul_in_query(request):
            return _nul_response(request)
        try:
            return self.get_response(request)
        except (*HANDLED, *OUTAGES) as exc:
            return error_response(request, exc)

    async def _acall(self, request: HttpRequest) -> HttpResponse | None:
        if _nul_in_query(request):
            return _nul_response(request)
        try:
            return await self.get_response(request)
        except (*HANDLED, *OUTAGES) as exc:
            return error_response(request, exc)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        # Views' exceptions arrive here (Django turns them into responses before __call__
        # would see them); middleware below this one raise into __call__.
        return error_response(request, exception)
