"""Stored chat completions: list, retrieve, update metadata, delete, and their messages."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest, HttpResponse, JsonResponse

from jobs import completions
from jobs.faces.openai.errors import ApiError, not_found
from jobs.faces.openai.http import api_view, json_body, query_int, query_order
from jobs.models import StoredCompletion
from jobs.params import ParamError, build_request


def _page(page: completions.Page, item_id: Any, render: Any) -> JsonResponse:
    data = [render(item) for item in page.items]
    return JsonResponse(
        {
            "object": "list",
            "data": data,
            "first_id": item_id(data[0]) if data else None,
            "last_id": item_id(data[-1]) if data else None,
            "has_more": page.has_more,
        }
    )


def _metadata_filter(request: HttpRequest) -> dict[str, str]:
    """metadata[key]=value query pairs; every one must match."""
    found = {}
    for name, value in request.GET.items():
        if name.startswith("metadata[") and name.endswith("]"):
            found[name[len("metadata[") : -1]] = value
        elif name.startswith("metadata"):
            raise ApiError(
                f"Invalid query parameter '{name}': filter metadata as metadata[key]=value.",
                param="metadata",
                code="invalid_value",
            )
    return found


def _unknown_after(after: str) -> ApiError:
    return ApiError(
        f"Invalid 'after': no item with id '{after}' in this listing.", param="after", code="invalid_value"
    )


async def list_completions(request: HttpRequest, user: AbstractBaseUser) -> HttpResponse:
    """GET /v1/chat/completions (dispatched from the view that also serves POST)."""
    try:
        page = await completions.completion_page(
            user.pk,
            model=request.GET.get("model") or None,
            metadata=_metadata_filter(request),
            after=request.GET.get("after") or None,
            limit=query_int(request, "limit", completions.DEFAULT_LIMIT, 1, completions.MAX_LIMIT),
            order=query_order(request),
        )
    except completions.UnknownCursor as exc:
        raise _unknown_after(str(exc)) from None
    return _page(page, lambda item: item["id"], completions.completion_object)


async def _owned(user: AbstractBaseUser, completion_id: str) -> StoredCompletion:
    stored = await completions.completion_for_owner(completion_id, user.pk)
    if stored is None:
        raise not_found(f"No chat completion found with id '{completion_id}'.")
    return stored


def _new_metadata(body: Any) -> dict[str, str]:
    if not isinstance(body, dict) or "metadata" not in body:
        raise ApiError(
            "Missing required parameter: 'metadata'.", param="metadata", code="missing_required_parameter"
        )
    unknown = sorted(set(body) - {"metadata"})
    if unknown:
        raise ApiError(
            f"Unrecognized request argument supplied: {unknown[0]}",
            param=unknown[0],
            code="unknown_parameter",
        )
    try:
        _, options = build_request([], {"metadata": body["metadata"]}, known=frozenset({"metadata"}))
    except ParamError as exc:
        raise ApiError.from_param(exc) from None
    return options.metadata or {}


@api_view("GET", "POST", "DELETE")
async def completion(request: HttpRequest, user: AbstractBaseUser, completion_id: str) -> HttpResponse:
    stored = await _owned(user, completion_id)
    if request.method == "POST":
        metadata = _new_metadata(json_body(request))
        stored = await sync_to_async(completions.completion_update)(stored=stored, metadata=metadata)
    elif request.method == "DELETE":
        await sync_to_async(completions.completion_delete)(stored=stored)
        return JsonResponse({"object": "chat.completion.deleted", "id": completion_id, "deleted": True})
    return JsonResponse(completions.completion_object(stored))


@api_view("GET")
async def messages(request: HttpRequest, user: AbstractBaseUser, completion_id: str) -> HttpResponse:
    stored = await _owned(user, completion_id)
    try:
        page = completions.messages_page(
            stored,
            after=request.GET.get("after") or None,
            limit=query_int(request, "limit", completions.DEFAULT_LIMIT, 1, completions.MAX_LIMIT),
            order=query_order(request),
        )
    except completions.UnknownCursor as exc:
        raise _unknown_after(str(exc)) from None
    return _page(page, lambda item: item["id"], lambda item: item)
