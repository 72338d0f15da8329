"""OpenAI's list paging (after / limit / order, answered as {object: list, data, first_id,
last_id, has_more}) as a DRF pagination class; the query is checked by its serializer. And how
a list reads its query: blank values as defaults, metadata[key]=value filters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import JsonResponse
from rest_framework import serializers
from rest_framework.pagination import BasePagination
from rest_framework.request import Request

from jobs import completions, paging
from jobs.faces.common.errors import FaceError
from jobs.faces.common.serializers import StrictQueryInteger, check


class PageQuery(serializers.Serializer):
    after = serializers.CharField(
        required=False, allow_blank=True, help_text="Id of the last item of the previous page."
    )
    limit = StrictQueryInteger(
        required=False, min_value=1, max_value=completions.MAX_LIMIT, help_text="Items per page."
    )
    order = serializers.ChoiceField(choices=["asc", "desc"], required=False, allow_blank=True)


class ListPage(serializers.Serializer):
    """The page's envelope; a subclass names its items: data = Item(many=True)."""

    object = serializers.ChoiceField(choices=["list"])
    first_id = serializers.CharField(allow_null=True)
    last_id = serializers.CharField(allow_null=True)
    has_more = serializers.BooleanField()


class AfterLimitPagination(BasePagination):
    """Reads the page query; `respond` renders a paging.Page."""

    def read(self, query: Any) -> dict[str, Any]:
        values = check(PageQuery, query)
        return {
            "after": values.get("after") or None,
            "limit": values.get("limit") or completions.DEFAULT_LIMIT,
            "order": values.get("order") or "asc",
        }

    def respond(self, page: paging.Page, render: Callable[[Any], dict[str, Any]]) -> JsonResponse:
        data = [render(item) for item in page.items]
        return JsonResponse(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": page.has_more,
            }
        )

    @staticmethod
    def unknown_after(after: str) -> FaceError:
        return FaceError(
            f"Invalid 'after': no item with id '{after}' in this listing.",
            param="after",
            code="invalid_value",
        )


def query_values(request: Request) -> dict[str, str]:
    # A blank value means the default, as OpenAI reads it.
    return {name: value for name in request.query_params if (value := request.query_params.get(name, ""))}


def metadata_filter(request: Request) -> dict[str, str]:
    """metadata[key]=value query pairs; every one must match."""
    found = {}
    for name in request.query_params:
        if name.startswith("metadata[") and name.endswith("]"):
            found[name[len("metadata[") : -1]] = request.query_params.get(name, "")
        elif name.startswith("metadata"):
            raise FaceError(
                f"Invalid query parameter '{name}': filter metadata as metadata[key]=value.",
                param="metadata",
                code="invalid_value",
            )
    return found
