"""Stored chat completions: list, retrieve, update metadata, delete, and their messages."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.http import HttpResponse, JsonResponse
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request

from jobs import completions
from jobs.dbwork import db_work
from jobs.faces.common.errors import FaceError, refuse_unknown
from jobs.faces.common.pagination import AfterLimitPagination, PageQuery, metadata_filter, query_values
from jobs.faces.common.params import build_request
from jobs.faces.common.schema import errors
from jobs.faces.common.views import caller
from jobs.faces.openai import serializers as shapes
from jobs.faces.openai.base import OpenAIView
from jobs.faces.openai.errors import not_found
from jobs.models import StoredCompletion
from jobs.paging import UnknownCursor

paging = AfterLimitPagination()


async def list_completions(request: Request, user: User) -> HttpResponse:
    """GET /v1/chat/completions (served by the view that also serves POST)."""
    query = query_values(request)
    try:
        page = await completions.completion_page(
            user.pk,
            model=query.get("model") or None,
            metadata=metadata_filter(request),
            **paging.read(query),
        )
    except UnknownCursor as exc:
        raise paging.unknown_after(str(exc)) from None
    return paging.respond(page, completions.completion_object)


async def _owned(user: User, completion_id: str) -> StoredCompletion:
    stored = await completions.completion_for_owner(completion_id, user.pk)
    if stored is None:
        raise not_found(f"No chat completion found with id '{completion_id}'.")
    return stored


def _new_metadata(body: Any) -> dict[str, str]:
    if not isinstance(body, dict) or "metadata" not in body:
        raise FaceError(
            "Missing required parameter: 'metadata'.", param="metadata", code="missing_required_parameter"
        )
    refuse_unknown(body, {"metadata"})
    _, options = build_request([], {"metadata": body["metadata"]}, known=frozenset({"metadata"}))
    return options.metadata or {}


class Completion(OpenAIView):
    @extend_schema(operation_id="getChatCompletion", summary="A stored completion.",
                   responses={200: shapes.StoredChatCompletion, **errors(404)})  # fmt: skip
    async def get(self, request: Request, completion_id: str) -> HttpResponse:
        return JsonResponse(completions.completion_object(await _owned(caller(request), completion_id)))

    @extend_schema(
        operation_id="updateChatCompletion",
        summary="Replace a stored completion's metadata.",
        request=shapes.CompletionUpdate,
        responses={200: shapes.StoredChatCompletion, **errors(404, 413)},
    )
    async def post(self, request: Request, completion_id: str) -> HttpResponse:
        stored = await _owned(caller(request), completion_id)
        metadata = _new_metadata(self.json_body(request))
        stored = await db_work(completions.completion_update)(stored=stored, metadata=metadata)
        return JsonResponse(completions.completion_object(stored))

    @extend_schema(operation_id="deleteChatCompletion", summary="Delete a stored completion (the job stays).",
                   responses={200: shapes.ChatCompletionDeleted, **errors(404)})  # fmt: skip
    async def delete(self, request: Request, completion_id: str) -> HttpResponse:
        stored = await _owned(caller(request), completion_id)
        await db_work(completions.completion_delete)(stored=stored)
        return JsonResponse({"object": "chat.completion.deleted", "id": completion_id, "deleted": True})


class Messages(OpenAIView):
    @extend_schema(
        operation_id="getChatCompletionMessages",
        summary="The messages a stored completion was asked with.",
        parameters=[PageQuery],
        responses={200: shapes.StoredMessageList, **errors(404)},
    )
    async def get(self, request: Request, completion_id: str) -> HttpResponse:
        stored = await _owned(caller(request), completion_id)
        try:
            page = completions.messages_page(stored, **paging.read(query_values(request)))
        except UnknownCursor as exc:
            raise paging.unknown_after(str(exc)) from None
        return paging.respond(page, lambda item: item)
