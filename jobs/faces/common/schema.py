"""What the generated OpenAPI documents share: the error envelopes, the documented error answers
of every operation, the security schemes of the key authentication, and the document views."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.renderers import OpenApiJsonRenderer2
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny


class FaceSchema(AutoSchema):
    """Each operation is tagged with its face (openai, jobs, semoss), whatever its path."""

    def get_tags(self) -> list[str]:
        return [getattr(self.view, "face", "openai")]


class ErrorDetail(serializers.Serializer):
    message = serializers.CharField()
    type = serializers.CharField()
    param = serializers.CharField(allow_null=True)
    code = serializers.CharField(allow_null=True)


class Error(serializers.Serializer):
    """OpenAI's error envelope, on /v1 (OpenAI and native faces)."""

    error = ErrorDetail()


class SemossError(serializers.Serializer):
    """A SEMOSS-face error answer; polls also carry the status (Unavailable when over a limit)."""

    errorMessage = serializers.CharField()  # noqa: N815  (the wire name)
    status = serializers.CharField(required=False)
    message = serializers.ListField(child=serializers.JSONField(), required=False)


MEANINGS = {
    400: "Invalid input: the envelope names the parameter and a code.",
    401: "Missing or invalid API key.",
    404: "No such object (also another user's), or no such engine or model.",
    405: "Method not allowed here.",
    409: "The job was cancelled before it wrote anything, or the Idempotency-Key was used with another "
    "request (code idempotency_key_conflict).",
    413: "The request body is larger than SPOOL_MAX_BODY_BYTES (1 MiB by default).",
    415: "A body in a Content-Type this face does not read.",
    429: "Over a rate limit or the cap on jobs at once; see Retry-After.",
    502: "The upstream server failed.",
    503: "Redis or Postgres is unreachable or overloaded for now; see Retry-After.",
    504: "The generation timed out, upstream or waiting for it, or it waited past its queue timeout "
    "without starting (code expired); its id is in X-Spool-Job-Id.",
}


# The metadata[key]=value filter of stored-completion lists, as OpenAI documents it.
METADATA_FILTER = OpenApiParameter(
    "metadata",
    {"type": "object", "additionalProperties": {"type": "string"}},
    OpenApiParameter.QUERY,
    style="deepObject",
    explode=True,
    description="metadata[key]=value; every pair must match.",
)


def idempotency_headers(answered: int = 200) -> list[OpenApiParameter]:
    """The Idempotency-Key a create takes, and the header of an answer that replays its job."""
    return [
        OpenApiParameter(
            "Idempotency-Key",
            {"type": "string", "minLength": 1, "maxLength": 255},
            OpenApiParameter.HEADER,
            description="The same key (from the same owner, within 24 h) answers with the job it made "
            "instead of a new one; with another request, a 409.",
        ),
        OpenApiParameter(
            "Idempotent-Replayed",
            {"type": "string", "enum": ["true"]},
            OpenApiParameter.HEADER,
            response=[answered],
            description="The answer is the job an earlier request with this Idempotency-Key made.",
        ),
    ]


def errors(*statuses: int, envelope: type[serializers.Serializer] = Error) -> dict[int, OpenApiResponse]:
    """Every call is authenticated and counted (401, 429) and needs Redis and Postgres (503); a
    NUL in the query string is a 400 on any route."""
    every = sorted({400, 401, 429, 503, *statuses})
    return {status: OpenApiResponse(envelope, description=MEANINGS[status]) for status in every}


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "jobs.faces.common.auth.ApiKeyAuthentication"
    name = ["bearer", "basic"]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, Any]]:
        return [
            {"type": "http", "scheme": "bearer", "description": "The secret key."},
            {"type": "http", "scheme": "basic", "description": "access_key:secret_key."},
        ]


class ReadTokenScheme(OpenApiAuthenticationExtension):
    target_class = "jobs.faces.common.auth.ReadTokenAuthentication"
    name = "readToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "query",
            "name": "token",
            "description": "A read token (POST /v1/jobs/{job_id}/read_tokens): reads that job, nothing else.",
        }


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "jobs.faces.common.auth.SemossSessionAuthentication"
    name = "session"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "apiKey", "in": "cookie", "name": "sessionid", "description": "Set by GET /config."}


def _under(prefix: str, endpoints: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    return [endpoint for endpoint in endpoints if endpoint[0].startswith(prefix)]


def only_v1(endpoints: list[tuple[str, ...]], **kwargs: Any) -> list[tuple[str, ...]]:
    return _under("/v1/", endpoints)


def only_native(endpoints: list[tuple[str, ...]], **kwargs: Any) -> list[tuple[str, ...]]:
    return _under("/v1/jobs", endpoints)


def only_semoss(endpoints: list[tuple[str, ...]], **kwargs: Any) -> list[tuple[str, ...]]:
    return _under("/Monolith/api/", endpoints)


def document_view(hook: str, **settings: Any) -> Any:
    """A view serving the document generated from the routes `hook` keeps, without a key."""
    # Imported here: drf_spectacular.views reads DEFAULT_SCHEMA_CLASS, which is in this module.
    from drf_spectacular.views import SpectacularAPIView

    return SpectacularAPIView.as_view(
        custom_settings={"PREPROCESSING_HOOKS": [f"jobs.faces.common.schema.{hook}"], **settings},
        renderer_classes=[OpenApiJsonRenderer2],  # application/json, whatever the Accept header says
        authentication_classes=[],
        permission_classes=[AllowAny],
    )
