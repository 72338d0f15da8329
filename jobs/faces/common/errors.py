"""One error vocabulary (FaceError) and the one DRF exception handler that renders it, and DRF's
own exceptions, in the calling face's envelope: OpenAI's {"error": {...}} on /v1 (the native
face shares it), {"errorMessage"} on the SEMOSS face."""

from __future__ import annotations

import math
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions

from jobs.access import EngineNotAllowed
from jobs.faces.common.auth import Refused
from jobs.middleware import error_response, face_error
from jobs.protocols.openai_errors import INVALID_REQUEST, SERVER_ERROR, error_body

OPENAI, NATIVE, SEMOSS = "openai", "jobs", "semoss"


class FaceError(Exception):
    """Raised anywhere below a view; the exception handler renders it in the view's face."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        retry: bool | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message, self.status, self.param, self.code = message, status, param, code
        self.type = type or (SERVER_ERROR if status >= 500 else INVALID_REQUEST)
        self.retry = retry
        self.headers: dict[str, str] = dict(headers or {})
        # Extra fields a SEMOSS error answer carries beside errorMessage (status, message...).
        self.body = body

    def envelope(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)

    def response(self, face: str = OPENAI) -> HttpResponse:
        if face == SEMOSS:
            response = JsonResponse({**(self.body or {}), "errorMessage": self.message}, status=self.status)
        else:
            response = JsonResponse(self.envelope(), status=self.status)
        if self.retry is not None:
            # The openai SDK obeys this header; without it, it would retry 409s and 5xx by itself.
            response["x-should-retry"] = "true" if self.retry else "false"
        for name, value in self.headers.items():
            response[name] = value
        return response


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
    """REST_FRAMEWORK["EXCEPTION_HANDLER"]: every face view's errors end here."""
    view = context["view"]
    request: HttpRequest = context["request"]._request  # DRF's views always put it there
    face = getattr(view, "face", OPENAI)
    if isinstance(exc, exceptions.Throttled):
        # The same 429 as any other limit (jobs.middleware renders those), with Retry-After.
        # DRF sets wait in __init__; its stubs do not declare it.
        wait = max(1, math.ceil(exc.wait or 1))  # type: ignore[attr-defined]
        return face_error(request, 429, str(exc.detail), code="rate_limit_exceeded", retry_after=wait)
    if isinstance(exc, FaceError):
        return exc.response(face)
    failure = translate(exc, face, request, view)
    if failure is not None:
        return failure.response(face)
    # Outages, limits and a body too large: rendered as the middleware renders them outside views.
    return error_response(request, exc)
