"""GET /v1/jobs/completions: the caller's stored completions, searched by what was said (`q`),
filtered by model and metadata, paged like OpenAI's lists. A thin call to completion_page."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request

from jobs import completions
from jobs.faces.common.errors import FaceError
from jobs.faces.common.pagination import AfterLimitPagination, PageQuery, metadata_filter, query_values
from jobs.faces.common.schema import METADATA_FILTER, errors
from jobs.faces.common.serializers import check
from jobs.faces.common.views import caller
from jobs.faces.native.views import NativeView
from jobs.faces.openai import serializers as openai_shapes
from jobs.paging import UnknownCursor

paging = AfterLimitPagination()


class SearchQuery(PageQuery):
    q = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text='Words in the messages or the answer: "a phrase", `or`, -excluded (web search syntax).',
    )
    model = serializers.CharField(required=False, allow_blank=True)
    order = serializers.ChoiceField(
        choices=["asc", "desc", completions.RELEVANCE],
        required=False,
        allow_blank=True,
        help_text="relevance (with q): best match first, then newest.",
    )


class StoredCompletions(NativeView):
    @extend_schema(
        operation_id="searchStoredCompletions",
        summary="The caller's stored completions, searched by what was said.",
        parameters=[
            SearchQuery,
            METADATA_FILTER,
        ],
        responses={200: openai_shapes.ChatCompletionList, **errors()},
    )
    async def get(self, request: Request) -> HttpResponse:
        query = query_values(request)
        values = check(SearchQuery, {k: v for k, v in query.items() if not k.startswith("metadata")})
        text = values.get("q") or None
        order = values.get("order") or "asc"
        if order == completions.RELEVANCE and not text:
            raise FaceError("order=relevance needs a search: give 'q'.", param="order", code="invalid_value")
        page_args = paging.read({k: v for k, v in query.items() if k in ("after", "limit")})
        page_args["order"] = order
        try:
            page = await completions.completion_page(
                caller(request).pk,
                model=values.get("model") or None,
                metadata=metadata_filter(request),
                q=text,
                **page_args,
            )
        except UnknownCursor as exc:
            raise paging.unknown_after(str(exc)) from None
        return paging.respond(page, completions.completion_object)
