"""Batch API batches and files in the admin: each batch's progress, its files, its lines with
their jobs, and a cancel action (the same path as POST /v1/batches/{id}/cancel)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from jobs.batches.models import Batch, BatchLine, File
from jobs.batches.service import batch_cancel


class LineInline(admin.TabularInline):
    model = BatchLine
    fields = ["line", "custom_id", "job", "answered", "refused"]
    readonly_fields = ["line", "custom_id", "job", "answered", "refused"]
    raw_id_fields = ["job"]
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False
    ordering = ["line"]

    @admin.display(description="answered")
    def answered(self, line: BatchLine) -> str:
        """A line answered without a job (embeddings): how many vectors, not the vectors."""
        if line.answer is None:
            return "-"
        return f"{len(line.answer.get('data') or [])} embeddings"


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "endpoint", "status", "progress", "created_at", "expires_at"]
    list_filter = ["status", "endpoint"]
    search_fields = ["id", "owner__username"]
    list_select_related = ["owner"]
    readonly_fields = [f.name for f in Batch._meta.fields]
    inlines = [LineInline]
    actions = ["cancel"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # batches are made from an uploaded file, over the API

    @admin.display(description="progress")
    def progress(self, batch: Batch) -> str:
        done = batch.completed + batch.failed
        return f"{done} of {batch.total} ({batch.completed} completed, {batch.failed} failed)"

    @admin.action(description="Cancel the selected batches")
    def cancel(self, request: HttpRequest, queryset: QuerySet[Batch]) -> None:
        for batch in queryset:
            batch_cancel(batch=batch)
        self.message_user(request, f"Asked {queryset.count()} batch(es) to cancel.", messages.SUCCESS)


@admin.register(File)
class FileAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "purpose", "filename", "bytes", "created_at"]
    list_filter = ["purpose"]
    search_fields = ["id", "filename", "owner__username"]
    list_select_related = ["owner"]
    readonly_fields = [f.name for f in File._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
