"""One error vocabulary (FaceError), one renderer per face, and the two routes that use them: the
DRF exception handler (errors in a face's view) and `error_response`, which FaceErrorsMiddleware
calls for what is raised outside one. OpenAI's {"error": {...}} on /v1 (the native face shares
it), {"errorMessage"} on the SEMOSS face (/Monolith/); the URL says which."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import redis
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions

from jobs import dbpool, metrics
from jobs.access import EngineNotAllowed
from jobs.faces.common.auth import Refused
from jobs.idempotency import IdempotencyConflict, InvalidIdempotencyKey
from jobs.limits import LimitExceeded
from jobs.overload import is_overload
from jobs.placement import InvalidPlacement
from jobs.protocols.openai_errors import JOB_ERROR_STATUS, error_body, error_type, stream_error_type
from jobs.services import JobRefused

log = logging.getLogger(__name__)

OPENAI, NATIVE, SEMOSS = "openai", "jobs", "semoss"
OUTAGES = (redis.RedisError, OperationalError, InterfaceError)
# Raised below the views as well as in them: each is one FaceError (`problem`).
HANDLED = (
    LimitExceeded,
    RequestDataTooBig,
    IdempotencyConflict,
    InvalidIdempotencyKey,
    InvalidPlacement,
    JobRefused,
)
# A SEMOSS poller keeps polling on any status it does not know as terminal, which is what it
# should do during an outage or a rate limit: so the errors that meet a request before or around
# its work (`problem`) say "Unavailable" in SEMOSS's answer.
UNAVAILABLE = {"status": "Unavailable", "message": []}
# A pool busy past its timeout frees up within seconds; a client that waits this long before
# trying again does not add to the queue it met.
OVERLOAD_RETRY_AFTER = 2


class FaceError(Exception):
    """Raised anywhere while a request is served; rendered in the URL's face by either route."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        retry: bool | None = None,
        retry_after: int | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message, self.status, self.param, self.code = message, status, param, code
        self.type = type or error_type(status)
        self.retry = retry
        self.headers: dict[str, str] = dict(headers or {})
        if retry_after is not None:
            self.headers["Retry-After"] = str(retry_after)
        # Extra fields a SEMOSS error answer carries beside errorMessage (status, message...).
        self.body = body

    def envelope(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)

    def semoss_body(self) -> dict[str, Any]:
        return {**(self.body or {}), "errorMessage": self.message}


def job_error(data: dict[str, Any]) -> FaceError:
    """The error a job ended with (the terminal chunk's data), as an HTTP error."""
    code = data.get("code") or "engine_error"
    status = JOB_ERROR_STATUS.get(code, 500)
    return FaceError(
        data.get("message") or "The generation failed.",
        status=status,
        code=code,
        type=stream_error_type(code),
        # The engine has already retried what was worth retrying; another attempt by the SDK
        # would only run the whole job again.
        retry=False,
    )


def face_of(request: HttpRequest) -> str:
    """The face whose shape a request's errors take, by its URL (config/urls.py mounts each
    face under its own prefix), so a view of no face class (the API documents) answers in it too."""
    if request.path.startswith("/Monolith/"):
        return SEMOSS
    return NATIVE if request.path.startswith("/v1/jobs") else OPENAI


RENDERERS: dict[str, Callable[[FaceError], dict[str, Any]]] = {
    OPENAI: FaceError.envelope,
    NATIVE: FaceError.envelope,
    SEMOSS: FaceError.semoss_body,
}


def render(request: HttpRequest, error: FaceError) -> HttpResponse:
    """The one answer to an error, whichever route met it."""
    response = JsonResponse(RENDERERS[face_of(request)](error), status=error.status)
    if error.retry is not None:
        # The openai SDK obeys this header; without it, it would retry 409s and 5xx by itself.
        response["x-should-retry"] = "true" if error.retry else "false"
    for name, value in error.headers.items():
        response[name] = value
    return response


def problem(request: HttpRequest, exc: BaseException) -> FaceError | None:
    """What goes wrong around any view, as a FaceError: a caller over its limits (429), a body too
    large (413), a parameter its engine cannot honour (400), an idempotency key or placement
    refused, an outage of Redis or Postgres or a pool busy past its timeout (503). None for
    anything else."""
    if isinstance(exc, FaceError):
        return exc
    if isinstance(exc, LimitExceeded):
        return FaceError(
            exc.message, status=429, code=exc.code, retry_after=exc.retry_after, body=UNAVAILABLE
        )
    if isinstance(exc, JobRefused):
        return FaceError(exc.message, param=exc.param, code="unsupported_parameter", body=UNAVAILABLE)
    if isinstance(exc, IdempotencyConflict):
        return FaceError(str(exc), status=409, code="idempotency_key_conflict", retry=False, body=UNAVAILABLE)
    if isinstance(exc, InvalidIdempotencyKey):
        return FaceError(str(exc), code="invalid_idempotency_key", body=UNAVAILABLE)
    if isinstance(exc, InvalidPlacement):
        return FaceError(str(exc), code="invalid_value", param=exc.param, body=UNAVAILABLE)
    if isinstance(exc, RequestDataTooBig):
        return FaceError(
            "The request body is too large.", status=413, code="request_too_large", body=UNAVAILABLE
        )
    if isinstance(exc, OUTAGES) and is_overload(exc):
        log.warning("overloaded on %s: %s", request.path, exc)
        message = "Spool is overloaded right now; try again shortly."
        return FaceError(
            message, status=503, code="server_overloaded", retry_after=OVERLOAD_RETRY_AFTER, body=UNAVAILABLE
        )
    if isinstance(exc, OUTAGES):
        log.warning("outage on %s: %s", request.path, exc)
        metrics.backend_error("redis" if isinstance(exc, redis.RedisError) else "postgres")
        if not isinstance(exc, redis.RedisError):
            # What broke this request's connection broke the pool's idle ones too.
            dbpool.check_idle_connections()
        which = "Redis" if isinstance(exc, redis.RedisError) else "the database"
        message = f"Spool cannot reach {which} right now; try again shortly."
        return FaceError(message, status=503, code="service_unavailable", retry_after=1, body=UNAVAILABLE)
    return None


def error_response(request: HttpRequest, exc: BaseException) -> HttpResponse | None:
    """The answer to what was raised outside a view (FaceErrorsMiddleware); None: not ours."""
    error = problem(request, exc)
    return None if error is None else render(request, error)


def refuse_unknown(given: Any, known: Any) -> None:
    """OpenAI's 400 for the first (in sorted order) argument not in `known`."""
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise FaceError(
            f"Unrecognized request argument supplied: {unknown[0]}",
            param=unknown[0],
            code="unknown_parameter",
        )


def _openai_unauthorized(header: str) -> FaceError:
    if not header:
        message = (
            "You didn't provide an API key. You need to provide your API key in an Authorization "
            "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
        return FaceError(message, status=401, retry=False)
    token = header.split(" ", 1)[-1].strip()
    shown = f"{token[:3]}***{token[-4:]}" if len(token) > 8 else "***"
    return FaceError(
        f"Incorrect API key provided: {shown}. Create a key with `manage.py spool_key USERNAME`.",
        status=401,
        code="invalid_api_key",
        retry=False,
    )


def _unauthenticated(face: str, request: HttpRequest, refused: Refused | None = None) -> FaceError:
    if refused is not None:
        # A real key that is revoked or expired, or a read token that is not good: say which.
        return FaceError(
            refused.message,
            status=401,
            code=refused.error_code if face != SEMOSS else None,
            retry=False if face == OPENAI else None,
            headers={"WWW-Authenticate": "Bearer"} if face == NATIVE else None,
        )
    if face == OPENAI:
        return _openai_unauthorized(request.headers.get("Authorization", ""))
    if face == NATIVE:
        return FaceError(
            "Invalid or missing API key: send 'Authorization: Bearer <secret key>'.",
            status=401,
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return FaceError("Not authenticated: send Basic access_key:secret_key or log in.", status=401)


def not_allowed(message: str, code: str) -> FaceError:
    """A key that may not do this (another engine, another face): 403 in every face's shape."""
    return FaceError(message, status=403, code=code)


def _method_not_allowed(face: str, request: HttpRequest, allowed: list[str]) -> FaceError:
    shown = [m for m in allowed if m != "OPTIONS"]
    message = f"Method {request.method} is not allowed here"
    message += f"; use {' or '.join(shown)}." if face == OPENAI else "."
    return FaceError(
        message,
        status=405,
        code="method_not_allowed",
        retry=False if face == OPENAI else None,
        headers={"Allow": ", ".join(shown)},
    )


def translate(exc: BaseException, face: str, request: HttpRequest, view: Any) -> FaceError | None:
    """DRF's exceptions, and a key's refusals, in the face's words; None for anything else."""
    if isinstance(exc, Refused):
        return _unauthenticated(face, request, exc)
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return _unauthenticated(face, request)
    if isinstance(exc, EngineNotAllowed):
        return not_allowed(str(exc), "engine_not_allowed")
    if isinstance(exc, exceptions.MethodNotAllowed):
        return _method_not_allowed(face, request, view.allowed_methods)
    if isinstance(exc, exceptions.APIException):
        return FaceError(str(exc.detail), status=exc.status_code, code=exc.default_code)
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse | None:
    """REST_FRAMEWORK["EXCEPTION_HANDLER"]: every face view's errors end here. The view's face
    chooses the words (translate); the URL's face renders them, as outside views."""
    view = context["view"]
    request: HttpRequest = context["request"]._request  # DRF's views always put it there
    if isinstance(exc, exceptions.Throttled):
        # The same 429 as any other limit, with Retry-After. DRF sets wait in __init__; its
        # stubs do not declare it.
        wait = max(1, math.ceil(exc.wait or 1))  # type: ignore[attr-defined]
        exc = LimitExceeded(str(exc.detail), retry_after=wait)
    error = translate(exc, getattr(view, "face", face_of(request)), request, view) or problem(request, exc)
    return None if error is None else render(request, error)
