"""Admin for stored responses (POST /v1/responses): filter by metadata, model, engine, status
and date; read one; delete."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from jobs.admin.completions import StoredColumns
from jobs.admin.filters import MetadataFilter, RecentValuesFilter
from jobs.admin.largetable import LargeTableAdmin
from jobs.models import StoredResponse

PREVIEW_CHARS = 90


def _output_text(stored: StoredResponse) -> str:
    """The response's text, as the SDK's output_text joins it."""
    texts = [
        part.get("text", "")
        for item in (stored.response or {}).get("output") or []
        if item.get("type") == "message"
        for part in item.get("content") or []
        if part.get("type") == "output_text"
    ]
    return "".join(texts)


@admin.register(StoredResponse)
class StoredResponseAdmin(StoredColumns, LargeTableAdmin):
    list_display = [
        "short_id",
        "created_at",
        "model",
        "owner",
        "status",
        "answer",
        "metadata_pairs",
        "tokens",
    ]
    list_filter = [MetadataFilter, ("model", RecentValuesFilter), "engine", "status"]
    list_select_related = ["owner"]
    fields = [
        "id",
        "job",
        "owner",
        "engine",
        "model",
        "status",
        "created_at",
        "metadata",
        "usage",
        "response",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # the same names, all plain strings
    search_fields = ["id"]

    @admin.display(description="id", ordering="created_at")
    def short_id(self, stored: StoredResponse) -> str:
        return stored.id.removeprefix("resp_")[:12]

    @admin.display(description="answer")
    def answer(self, stored: StoredResponse) -> str:
        return _output_text(stored)[:PREVIEW_CHARS]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made by responses with store: true, never by hand

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a record of what happened: read it or delete it
