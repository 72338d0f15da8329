"""/v1/batches: create, retrieve, list, cancel; each key sees only its owner's batches. Thin views
over jobs.batches (the runner advances them in the workers)."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.request import Request

from jobs.access import engines_of
from jobs.batches import endpoints, selectors, service
from jobs.batches.models import Batch, File
from jobs.batches.objects import batch_object
from jobs.dbwork import db_work
from jobs.faces.common.errors import FaceError, refuse_unknown
from jobs.faces.common.pagination import AfterLimitPagination, query_values
from jobs.faces.common.schema import errors
from jobs.faces.common.serializers import check
from jobs.faces.common.views import caller
from jobs.faces.openai import batch_serializers as shapes
from jobs.faces.openai.base import OpenAIView
from jobs.faces.openai.errors import not_found
from jobs.paging import UnknownCursor

paging = AfterLimitPagination()
BATCH_ID = OpenApiParameter("batch_id", OpenApiTypes.STR, OpenApiParameter.PATH)
CREATE_EXAMPLES = [
    OpenApiExample(
        "chat",
        value={"input_file_id": "file-0123456789abcdef0123456789abcdef", "endpoint": "/v1/chat/completions",
               "completion_window": "24h", "metadata": {"job": "nightly"}},
        request_only=True,
    )
]  # fmt: skip


def _check_create(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise FaceError("The request body must be a JSON object.", code="invalid_type")
    refuse_unknown(body, shapes.BatchCreate().fields)
    values = check(shapes.BatchCreate, body)
    if values["endpoint"] not in endpoints.urls():
        raise FaceError(
            f"Invalid value for 'endpoint': '{values['endpoint']}'. Supported values are: "
            + ", ".join(f"'{url}'" for url in endpoints.urls())
            + ".",
            param="endpoint",
            code="invalid_value",
        )
    metadata = values.get("metadata")
    if metadata and len(metadata) > shapes.MAX_METADATA_KEYS:
        raise FaceError(
            f"Invalid 'metadata': at most {shapes.MAX_METADATA_KEYS} keys.",
            param="metadata",
            code="invalid_value",
        )
    if metadata and any(len(key) > 64 for key in metadata):
        raise FaceError(
            "Invalid 'metadata': keys are at most 64 characters long.", param="metadata", code="invalid_value"
        )
    return values


def _input_file(owner_id: int, file_id: str) -> File:
    found = selectors.file_for_owner(file_id, owner_id)
    if found is None:
        raise not_found(f"No such File object: {file_id}")
    if found.purpose != File.Purpose.BATCH:
        raise FaceError(
            f"Invalid 'input_file_id': '{file_id}' has purpose '{found.purpose}'; a batch reads a file "
            "of purpose 'batch'.",
            param="input_file_id",
            code="invalid_value",
        )
    return found


async def _owned(request: Request, batch_id: str) -> Batch:
    found = await db_work(selectors.batch_for_owner)(batch_id, caller(request).pk)
    if found is None:
        raise not_found(f"No batch found with id '{batch_id}'.")
    return found


class Batches(OpenAIView):
    @extend_schema(
        operation_id="createBatch",
        summary="Run every line of an uploaded file as a job of class batch; answers in an output file.",
        request=shapes.BatchCreate,
        responses={200: shapes.Batch, **errors(404, 413)},
        examples=CREATE_EXAMPLES,
    )
    async def post(self, request: Request) -> HttpResponse:
        values = _check_create(self.json_body(request))
        owner, engines = caller(request), engines_of(request.auth)

        def create() -> Batch:
            source = _input_file(owner.pk, values["input_file_id"])
            return service.batch_create(
                owner=owner,
                engines=engines,
                input_file=source,
                endpoint=values["endpoint"],
                completion_window=values["completion_window"],
                output_expires_seconds=(values.get("output_expires_after") or {}).get("seconds"),
                metadata=values.get("metadata"),
            )

        return JsonResponse(batch_object(await db_work(create)()))

    @extend_schema(
        operation_id="listBatches",
        summary="The caller's batches, newest first.",
        parameters=[shapes.BatchListQuery],
        responses={200: shapes.BatchList, **errors()},
    )
    async def get(self, request: Request) -> HttpResponse:
        query = query_values(request)
        values = check(shapes.BatchListQuery, query)
        owner = caller(request)
        page_query = {
            "after": values.get("after") or None,
            "limit": values.get("limit") or 20,
            "order": "desc",
        }

        def read() -> HttpResponse:
            try:
                page = selectors.batch_page(owner.pk, **page_query)
            except UnknownCursor as exc:
                raise paging.unknown_after(str(exc)) from None
            return paging.respond(page, batch_object)

        return await db_work(read)()


class BatchDetail(OpenAIView):
    @extend_schema(
        operation_id="retrieveBatch",
        summary="A batch: its status, request counts and files.",
        parameters=[BATCH_ID],
        responses={200: shapes.Batch, **errors(404)},
    )
    async def get(self, request: Request, batch_id: str) -> HttpResponse:
        return JsonResponse(batch_object(await _owned(request, batch_id)))


class BatchCancel(OpenAIView):
    @extend_schema(
        operation_id="cancelBatch",
        summary="Stop a batch: cancelling, then cancelled with what finished in its output file.",
        parameters=[BATCH_ID],
        request=None,
        responses={200: shapes.Batch, **errors(404)},
    )
    async def post(self, request: Request, batch_id: str) -> HttpResponse:
        batch = await _owned(request, batch_id)
        batch = await db_work(service.batch_cancel)(batch=batch)
        return JsonResponse(batch_object(batch))
