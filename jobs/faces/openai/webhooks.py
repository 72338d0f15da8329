"""/v1/webhook_endpoints: OpenAI's webhook endpoints API (create, list, retrieve, update, delete,
rotate_secret), each key seeing only its owner's; and Spool's delivery log beside it (deliveries
with their attempts, and "send again"). Thin views over jobs.webhooks.endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.http import HttpResponse, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.request import Request

from jobs.dbwork import db_work
from jobs.faces.common.errors import FaceError, refuse_unknown
from jobs.faces.common.pagination import AfterLimitPagination, PageQuery, query_values
from jobs.faces.common.schema import errors
from jobs.faces.common.serializers import check
from jobs.faces.common.views import caller
from jobs.faces.openai import webhook_serializers as shapes
from jobs.faces.openai.base import OpenAIView
from jobs.faces.openai.errors import not_found
from jobs.paging import UnknownCursor, public_id
from jobs.webhooks import endpoints
from jobs.webhooks.addresses import RefusedAddress
from jobs.webhooks.endpoints import DELIVERY_PREFIX, ENDPOINT_PREFIX
from jobs.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

paging = AfterLimitPagination()
ENDPOINT_ID = OpenApiParameter("webhook_endpoint_id", OpenApiTypes.STR, OpenApiParameter.PATH)
DELIVERY_ID = OpenApiParameter("delivery_id", OpenApiTypes.STR, OpenApiParameter.PATH)
CREATE_EXAMPLES = [
    OpenApiExample(
        "job events",
        value={
            # Loopback: refused unless SPOOL_WEBHOOK_ALLOWED_NETWORKS allows it, as the tests do.
            "url": "http://127.0.0.1:9/hooks/spool",
            "event_types": ["job.succeeded", "job.failed", "job.cancelled"],
            "name": "my receiver",
        },
        request_only=True,
    )
]


def _unix(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp())


def render_endpoint(endpoint: WebhookEndpoint, secret: str | None = None) -> dict[str, Any]:
    rendered = {
        "id": public_id(ENDPOINT_PREFIX, endpoint.pk),
        "object": "webhook_endpoint",
        "url": endpoint.url,
        "event_types": endpoint.event_types,
        "name": endpoint.description,
        "description": endpoint.description,
        "created_at": _unix(endpoint.created_at),
        "updated_at": _unix(endpoint.updated_at),
        "signing_secret_hint": endpoints.secret_hint(endpoint),
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason or None,
        "failing_since": _unix(endpoint.failing_since),
    }
    if secret is not None:
        rendered["signing_secret"] = secret
    return rendered


def _attempt(attempt: WebhookAttempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "started_at": attempt.started_at.timestamp(),
        "status_code": attempt.status_code,
        "latency_ms": attempt.latency_ms,
        "error": attempt.error or None,
    }


def render_delivery(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": public_id(DELIVERY_PREFIX, delivery.pk),
        "object": "webhook_delivery",
        "webhook_endpoint_id": public_id(ENDPOINT_PREFIX, delivery.endpoint_id),
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "job_id": str(delivery.job_id) if delivery.job_id else None,
        "status": delivery.status,
        "created_at": _unix(delivery.created_at),
        "finished_at": _unix(delivery.finished_at),
        "next_attempt_at": _unix(delivery.next_attempt_at),
        "payload": delivery.payload,
        "attempts": [_attempt(a) for a in delivery.attempts.all()],
    }


def _body(view: OpenAIView, request: Request, shape: type, known: set[str]) -> dict[str, Any]:
    body = view.json_body(request)
    if not isinstance(body, dict):
        raise FaceError("The request body must be a JSON object.", code="invalid_json")
    refuse_unknown(body, known)
    values = check(shape, body)
    if "url" in values:
        try:
            URLValidator(schemes=["http", "https"])(values["url"])
        except ValidationError:
            raise FaceError(
                "Invalid 'url': expected an http or https URL.", param="url", code="invalid_url"
            ) from None
    return values


def _refused(exc: RefusedAddress) -> FaceError:
    return FaceError(str(exc), param="url", code="invalid_url")


async def _owned(user: User, endpoint_id: str) -> WebhookEndpoint:
    found = await db_work(endpoints.endpoint_for_owner)(endpoint_id, user.pk)
    if found is None:
        # Unknown, malformed or another owner's: the same answer, which says nothing of which.
        raise not_found(f"No webhook endpoint found with id '{endpoint_id}'.")
    return found


def _paged(read: Any, request: Request) -> HttpResponse:
    try:
        return read(**paging.read(query_values(request)))
    except UnknownCursor as exc:
        raise paging.unknown_after(str(exc)) from None


class Endpoints(OpenAIView):
    @extend_schema(
        operation_id="createWebhookEndpoint",
        summary="Register a webhook endpoint; its signing secret is in this answer only.",
        request=shapes.EndpointCreate,
        responses={200: shapes.EndpointWithSecret, **errors(413)},
        examples=CREATE_EXAMPLES,
    )
    async def post(self, request: Request) -> HttpResponse:
        values = _body(self, request, shapes.EndpointCreate, set(shapes.EndpointCreate().fields))
        try:
            endpoint, secret = await db_work(endpoints.endpoint_create)(owner=caller(request), **values)
        except RefusedAddress as exc:
            raise _refused(exc) from None
        return JsonResponse(render_endpoint(endpoint, secret))

    @extend_schema(
        operation_id="listWebhookEndpoints",
        summary="The caller's webhook endpoints.",
        parameters=[PageQuery],
        responses={200: shapes.EndpointList, **errors()},
    )
    async def get(self, request: Request) -> HttpResponse:
        owner = caller(request)

        def read(**page_args: Any) -> HttpResponse:
            return paging.respond(endpoints.endpoint_page(owner.pk, **page_args), render_endpoint)

        return await db_work(_paged)(read, request)


class Endpoint(OpenAIView):
    @extend_schema(
        operation_id="getWebhookEndpoint",
        summary="A webhook endpoint (never its secret).",
        parameters=[ENDPOINT_ID],
        responses={200: shapes.Endpoint, **errors(404)},
    )
    async def get(self, request: Request, webhook_endpoint_id: str) -> HttpResponse:
        return JsonResponse(render_endpoint(await _owned(caller(request), webhook_endpoint_id)))

    @extend_schema(
        operation_id="updateWebhookEndpoint",
        summary="Change its url, event types, name, or disable (enabled: false) and enable it.",
        parameters=[ENDPOINT_ID],
        request=shapes.EndpointUpdate,
        responses={200: shapes.Endpoint, **errors(404, 413)},
    )
    async def post(self, request: Request, webhook_endpoint_id: str) -> HttpResponse:
        endpoint = await _owned(caller(request), webhook_endpoint_id)
        values = _body(self, request, shapes.EndpointUpdate, set(shapes.EndpointUpdate().fields))
        try:
            endpoint = await db_work(endpoints.endpoint_update)(endpoint=endpoint, changes=values)
        except RefusedAddress as exc:
            raise _refused(exc) from None
        return JsonResponse(render_endpoint(endpoint))

    @extend_schema(
        operation_id="deleteWebhookEndpoint",
        summary="Delete a webhook endpoint and its delivery log.",
        parameters=[ENDPOINT_ID],
        responses={200: shapes.EndpointDeleted, **errors(404)},
    )
    async def delete(self, request: Request, webhook_endpoint_id: str) -> HttpResponse:
        endpoint = await _owned(caller(request), webhook_endpoint_id)
        await db_work(endpoints.endpoint_delete)(endpoint=endpoint)
        return JsonResponse(
            {"id": webhook_endpoint_id, "object": "webhook_endpoint.deleted", "deleted": True}
        )


class RotateSecret(OpenAIView):
    @extend_schema(
        operation_id="rotateWebhookEndpointSecret",
        summary="A new signing secret, in this answer only; the old one stops at once or after 24 hours.",
        parameters=[ENDPOINT_ID],
        request=shapes.RotateSecret,
        responses={200: shapes.EndpointWithSecret, **errors(404, 413)},
    )
    async def post(self, request: Request, webhook_endpoint_id: str) -> HttpResponse:
        endpoint = await _owned(caller(request), webhook_endpoint_id)
        body = request._request.body
        values = (
            _body(self, request, shapes.RotateSecret, {"keep_old_secret_active_for_24_hours"}) if body else {}
        )
        keep = endpoints.OLD_SECRET_GRACE if values.get("keep_old_secret_active_for_24_hours") else None
        secret = await db_work(endpoints.endpoint_rotate_secret)(endpoint=endpoint, keep_old_for=keep)
        return JsonResponse(render_endpoint(endpoint, secret))


class Deliveries(OpenAIView):
    @extend_schema(
        operation_id="listWebhookDeliveries",
        summary="The endpoint's deliveries, each with its attempts (time, status code, latency, error).",
        parameters=[ENDPOINT_ID, PageQuery],
        responses={200: shapes.DeliveryList, **errors(404)},
    )
    async def get(self, request: Request, webhook_endpoint_id: str) -> HttpResponse:
        endpoint = await _owned(caller(request), webhook_endpoint_id)

        def read(**page_args: Any) -> HttpResponse:
            return paging.respond(endpoints.delivery_page(endpoint, **page_args), render_delivery)

        return await db_work(_paged)(read, request)


class Resend(OpenAIView):
    @extend_schema(
        operation_id="resendWebhookDelivery",
        summary="Send a delivery again now (same event id), with a new day of retries.",
        parameters=[ENDPOINT_ID, DELIVERY_ID],
        request=None,
        responses={200: shapes.Delivery, **errors(404)},
    )
    async def post(self, request: Request, webhook_endpoint_id: str, delivery_id: str) -> HttpResponse:
        endpoint = await _owned(caller(request), webhook_endpoint_id)

        def resend() -> dict[str, Any]:
            delivery = endpoints.delivery_of(endpoint, delivery_id)
            if delivery is None:
                raise not_found(f"No delivery found with id '{delivery_id}'.")
            return render_delivery(endpoints.delivery_resend(delivery=delivery))

        return JsonResponse(await db_work(resend)())
