"""An error reaches the client with the same answer whichever route renders it: the middleware
(raised outside a view, or by a plain Django view) or DRF's exception handler (raised in a face's
view). One renderer per face decides the body; the face is the URL's."""

from __future__ import annotations

import json

import pytest
import redis
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from jobs.faces.common.errors import FaceError
from jobs.faces.common.middleware import FaceErrorsMiddleware
from jobs.idempotency import IdempotencyConflict
from jobs.limits import LimitExceeded
from jobs.placement import InvalidPlacement
from jobs.services import JobRefused

PATHS = {"openai": "/v1/chat/completions", "jobs": "/v1/jobs/abc", "semoss": "/Monolith/api/engine/runPixel"}
ERRORS = {
    "limit": lambda: LimitExceeded("Too many job starts.", retry_after=7),
    "idempotency": lambda: IdempotencyConflict("key-1"),
    "placement": lambda: InvalidPlacement("Not a priority.", param="priority"),
    "refused": lambda: JobRefused("spool-offline", "tools", "it cannot call tools."),
    "too_large": lambda: RequestDataTooBig("big"),
    "outage": lambda: redis.ConnectionError("refused"),
    "not_found": lambda: FaceError("No such job.", status=404, code="not_found"),
    "face_limit": lambda: FaceError("Slow down.", status=429, code="rate_limit_exceeded"),
    "face_unavailable": lambda: FaceError("Try later.", status=503, code="service_unavailable", retry=True),
}


def answer(response: HttpResponse) -> tuple:
    headers = {name: response.get(name) for name in ("Retry-After", "x-should-retry", "Content-Type")}
    return response.status_code, json.loads(response.content), headers


def through_the_middleware(request: HttpRequest, exc: Exception) -> HttpResponse:
    def get_response(request: HttpRequest) -> HttpResponse:
        raise exc

    return FaceErrorsMiddleware(get_response)(request)


def through_a_view(request: HttpRequest, exc: Exception, face: str | None) -> HttpResponse:
    class Raising(APIView):
        authentication_classes: list = []
        permission_classes = [AllowAny]
        throttle_classes: list = []

        def get(self, request: HttpRequest) -> HttpResponse:
            raise exc

    if face is not None:
        Raising.face = face  # type: ignore[attr-defined]
    return Raising.as_view()(request)


@pytest.mark.parametrize("face", PATHS)
@pytest.mark.parametrize("error", ERRORS)
def test_the_same_error_gets_the_same_answer_through_the_middleware_and_the_view(face, error):
    request = RequestFactory().get(PATHS[face])
    outside = answer(through_the_middleware(request, ERRORS[error]()))
    inside = answer(through_a_view(RequestFactory().get(PATHS[face]), ERRORS[error](), face))
    assert outside == inside
    status, body, _ = outside
    if face == "semoss":
        assert body["errorMessage"]
    else:
        kind = (
            "rate_limit_error"
            if status == 429
            else "server_error"
            if status >= 500
            else "invalid_request_error"
        )
        assert body["error"]["type"] == kind, body


def test_a_view_without_a_face_answers_in_its_urls_face():
    """The API documents' views under /Monolith/api/ belong to no face class, yet are SEMOSS's."""
    error = FaceError("Method POST is not allowed here.", status=405, code="method_not_allowed")
    status, body, _ = answer(through_a_view(RequestFactory().get("/Monolith/api/openapi.json"), error, None))
    assert (status, body) == (405, {"errorMessage": "Method POST is not allowed here."})


def test_a_parameter_its_engine_cannot_honour_is_a_400_naming_it_on_the_openai_and_native_faces():
    """job_create raises JobRefused; every face answers it through the one renderer."""
    for face in ("openai", "jobs"):
        status, body, _ = answer(
            through_the_middleware(RequestFactory().get(PATHS[face]), ERRORS["refused"]())
        )
        assert status == 400
        assert body["error"]["param"] == "tools" and body["error"]["code"] == "unsupported_parameter"
        assert (
            body["error"]["message"] == "Engine 'spool-offline' cannot honour 'tools': it cannot call tools."
        )
