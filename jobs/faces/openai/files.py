"""/v1/files: upload (multipart, streamed to disk as it arrives, then to the storage), list,
retrieve, content (streamed) and delete; each key sees only its owner's files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request

from jobs.batches import selectors, service, storage
from jobs.batches.ids import BATCH_PREFIX, public_id
from jobs.batches.models import File
from jobs.batches.objects import file_object
from jobs.dbwork import db_work
from jobs.faces.common.errors import FaceError
from jobs.faces.common.pagination import AfterLimitPagination, query_values
from jobs.faces.common.schema import errors
from jobs.faces.common.serializers import check
from jobs.faces.common.views import caller
from jobs.faces.openai import batch_serializers as shapes
from jobs.faces.openai.base import OpenAIView
from jobs.faces.openai.errors import not_found
from jobs.paging import UnknownCursor

paging = AfterLimitPagination()
FILE_ID = OpenApiParameter("file_id", OpenApiTypes.STR, OpenApiParameter.PATH)


def too_large() -> FaceError:
    limit = settings.SPOOL.batches.file_max_bytes
    return FaceError(
        f"File is too large: a file may hold at most {limit:,} bytes.",
        status=413,
        param="file",
        code="file_too_large",
    )


class CappedUpload(TemporaryFileUploadHandler):
    """Django's handler that writes each file to a temporary file as it arrives, refusing one
    past SPOOL_FILE_MAX_BYTES as soon as it gets there."""

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        if start + len(raw_data) > settings.SPOOL.batches.file_max_bytes:
            self.file.close()
            raise too_large()
        return super().receive_data_chunk(raw_data, start)


def _expires_seconds(request: Request) -> int | None:
    """expires_after[anchor] and expires_after[seconds], as the openai SDK sends a policy in a
    multipart form; None when no policy is given."""
    fields = {name: request.data.get(f"expires_after[{name}]") for name in ("anchor", "seconds")}
    given = {name: value for name, value in fields.items() if value is not None}
    if not given:
        return None
    seconds = given.get("seconds")
    if isinstance(seconds, str) and seconds.strip().lstrip("-").isdigit():
        given["seconds"] = int(seconds)
    policy = check(shapes.FileExpiry, {"expires_after": given})["expires_after"]
    return int(policy["seconds"])


def _upload(request: Request) -> tuple[UploadedFile, str]:
    """The file part and the purpose, the body parsed with the capped handler (sync: it reads
    the body and writes the temporary file)."""
    django_request = request._request
    declared = int(django_request.META.get("CONTENT_LENGTH") or 0)
    if declared > settings.SPOOL.batches.file_max_bytes + 1024 * 1024:  # the file plus its form's fields
        raise too_large()
    django_request.upload_handlers = [CappedUpload(django_request)]
    upload, purpose = request.FILES.get("file"), request.data.get("purpose")
    if upload is None:
        raise FaceError(
            "Missing required parameter: 'file'.", param="file", code="missing_required_parameter"
        )
    if purpose is None:
        raise FaceError(
            "Missing required parameter: 'purpose'.", param="purpose", code="missing_required_parameter"
        )
    if purpose != File.Purpose.BATCH:
        raise FaceError(
            f"Invalid value for 'purpose': '{purpose}'. Spool stores files for the Batch API only: "
            "use 'batch'.",
            param="purpose",
            code="invalid_value",
        )
    return upload, purpose


def _store(request: Request) -> dict[str, Any]:
    upload, purpose = _upload(request)
    try:
        stored = service.file_create(
            owner=caller(request), purpose=purpose, filename=upload.name or "upload.jsonl", content=upload,
            size=upload.size or 0, expires_seconds=_expires_seconds(request),
        )  # fmt: skip
    finally:
        upload.close()  # a temporary upload file goes with it
    return file_object(stored)


async def _owned(request: Request, file_id: str) -> File:
    found = await db_work(selectors.file_for_owner)(file_id, caller(request).pk)
    if found is None:
        raise not_found(f"No such File object: {file_id}")
    return found


class Files(OpenAIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="createFile",
        summary="Upload a file of batch requests (JSON Lines, purpose 'batch'), up to 200 MB.",
        request={"multipart/form-data": shapes.FileCreate},
        responses={200: shapes.File, **errors(413, 415)},
    )
    async def post(self, request: Request) -> HttpResponse:
        return JsonResponse(await db_work(_store)(request))

    @extend_schema(
        operation_id="listFiles",
        summary="The caller's files, newest first unless asked otherwise.",
        parameters=[shapes.FileListQuery],
        responses={200: shapes.FileList, **errors()},
    )
    async def get(self, request: Request) -> HttpResponse:
        query = query_values(request)
        values = check(shapes.FileListQuery, query)
        owner = caller(request)
        page_query = {**paging.read(query), "order": values.get("order") or "desc"}

        def read() -> HttpResponse:
            try:
                page = selectors.file_page(owner.pk, purpose=values.get("purpose") or None, **page_query)
            except UnknownCursor as exc:
                raise paging.unknown_after(str(exc)) from None
            return paging.respond(page, file_object)

        return await db_work(read)()


class FileDetail(OpenAIView):
    @extend_schema(
        operation_id="retrieveFile",
        summary="A file's description.",
        parameters=[FILE_ID],
        responses={200: shapes.File, **errors(404)},
    )
    async def get(self, request: Request, file_id: str) -> HttpResponse:
        return JsonResponse(file_object(await _owned(request, file_id)))

    @extend_schema(
        operation_id="deleteFile",
        summary="Delete a file and its bytes.",
        parameters=[FILE_ID],
        responses={200: shapes.FileDeleted, **errors(404)},
    )
    async def delete(self, request: Request, file_id: str) -> HttpResponse:
        found = await _owned(request, file_id)
        try:
            await db_work(service.file_delete)(file=found)
        except service.FileInUse as exc:
            raise FaceError(
                f"The file is the input of batch '{public_id(BATCH_PREFIX, exc.batch.pk)}', which is still "
                "running: cancel it, or wait for it to end, before deleting the file.",
                param="file_id",
                code="file_in_use",
            ) from None
        return JsonResponse({"id": file_id, "object": "file", "deleted": True})


async def _streamed(name: str) -> AsyncIterator[bytes]:
    """The stored bytes a chunk at a time, each read in a thread: Django would read a
    synchronous iterator whole before sending it."""
    handle = await sync_to_async(storage.files().open, thread_sensitive=False)(name, "rb")
    try:
        while chunk := await sync_to_async(handle.read, thread_sensitive=False)(storage.CHUNK):
            yield chunk
    finally:
        await sync_to_async(handle.close, thread_sensitive=False)()


class FileContent(OpenAIView):
    @extend_schema(
        operation_id="downloadFile",
        summary="A file's bytes.",
        parameters=[FILE_ID],
        responses={(200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY), **errors(404)},
    )
    async def get(self, request: Request, file_id: str) -> HttpResponse | StreamingHttpResponse:
        found = await _owned(request, file_id)
        response = StreamingHttpResponse(
            _streamed(found.storage_name), content_type="application/octet-stream"
        )
        response["Content-Length"] = str(found.bytes)
        response["Content-Disposition"] = content_disposition_header(True, found.filename) or ""
        return response
