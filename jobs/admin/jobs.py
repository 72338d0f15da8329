"""Admin for jobs: status, engine, owner and timings; cancel; a running job's chunk log, live; a
queued job's place in its engine's queue.

No filter by priority class: the class is a key of the `options` JSON, which no index covers, so
a filter on it reads (and decompresses) row after row of options down the created_at index until
it has a page and its bounded count. At 1,000,000 jobs that took 4-6 s and 2-3 s for a class no
job has, 0.1 s and 0.7 s for a class 1% of jobs have; an index on (options -> 'priority',
created_at, id) brought both under 50 ms."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import redis
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from engine.types import CONTENT
from jobs import capacity, chunklog, services
from jobs.admin.filters import RecentValuesFilter
from jobs.admin.largetable import LargeTableAdmin
from jobs.admin.readable import pretty
from jobs.models import Job
from jobs.redis_clients import sync_redis


def chunks_since(job: Job, cursor: int) -> list[dict[str, Any]]:
    """The job's chunks from `cursor` on: the archive once it has ended, else the live log."""
    if job.is_finished and job.chunks is not None:
        return job.chunks[cursor:]
    raw = sync_redis().lrange(chunklog.chunks_key(str(job.pk)), cursor, -1)
    return [json.loads(item) for item in raw]


def chunk_rows(chunks: list[dict[str, Any]], start: int) -> list[dict[str, Any]]:
    return [
        {
            "seq": start + i,
            "type": chunk.get("type", "?"),
            "choice": chunk.get("choice", 0),
            "data": json.dumps(chunk.get("data"), ensure_ascii=False),
        }
        for i, chunk in enumerate(chunks)
    ]


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(
        c["data"].get("content", "") for c in chunks if c["type"] == CONTENT and not c.get("choice")
    )


def _ms(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "-"
    return f"{(end - start).total_seconds() * 1000:,.0f} ms"


@admin.register(Job)
class JobAdmin(LargeTableAdmin):
    change_form_template = "admin/jobs/job/change_form.html"
    list_display = [
        "short_id", "created_at", "owner", "engine", "face", "status", "finish_reason",
        "queued_for", "first_chunk", "duration", "tokens",
    ]  # fmt: skip
    list_filter = [
        "status",
        "engine",
        ("face", RecentValuesFilter),
        ("finish_reason", RecentValuesFilter),
    ]
    list_select_related = ["owner", "engine"]
    list_defer = ("request", "options", "result", "chunks")
    search_fields = ["id"]  # only so the search box shows; get_search_results does the work
    search_help_text = "A job id, or an owner's exact username."
    actions = ["cancel"]
    fields = [
        "id", "owner", "engine", "room", "face", "status", "finish_reason", "error", "created_at",
        "started_at", "first_chunk_at", "finished_at", "usage", "request_json", "options_json",
        "result_json",
    ]  # fmt: skip
    readonly_fields = fields  # type: ignore[assignment]  # the same names, all plain strings

    def get_fields(self, request: HttpRequest, obj: Job | None = None) -> list[str]:  # type: ignore[override]
        fields = [str(name) for name in self.fields or ()]
        if obj is not None and obj.status == Job.Status.QUEUED and obj.engine.is_limited:
            fields.insert(fields.index("status") + 1, "queue_place")
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj: Job | None = None) -> list[str]:
        return self.get_fields(request, obj)

    @admin.display(description="queue")
    def queue_place(self, job: Job) -> str:
        """Read from Redis when the page renders: where the job waits, and why it has not started."""
        return capacity.job_place_text(capacity.queue_status(job.engine, str(job.pk)))

    @admin.display(description="id", ordering="created_at")
    def short_id(self, job: Job) -> str:
        return str(job.pk)[:8]

    @admin.display(description="queued")
    def queued_for(self, job: Job) -> str:
        return _ms(job.created_at, job.started_at)

    @admin.display(description="first chunk")
    def first_chunk(self, job: Job) -> str:
        return _ms(job.created_at, job.first_chunk_at)

    @admin.display(description="duration")
    def duration(self, job: Job) -> str:
        return _ms(job.created_at, job.finished_at)

    @admin.display(description="tokens in/out")
    def tokens(self, job: Job) -> str:
        usage = job.usage or {}
        return f"{usage.get('input_tokens', 0):,} / {usage.get('output_tokens', 0):,}" if usage else "-"

    @admin.display(description="request")
    def request_json(self, job: Job) -> str:
        return format_html('<pre class="spool-json">{}</pre>', pretty(job.request))

    @admin.display(description="options")
    def options_json(self, job: Job) -> str:
        return format_html('<pre class="spool-json">{}</pre>', pretty(job.options))

    @admin.display(description="result")
    def result_json(self, job: Job) -> str:
        return format_html('<pre class="spool-json">{}</pre>', pretty(job.result))

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple:
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(id=uuid.UUID(term)), False
        except ValueError:
            return queryset.filter(owner__username=term), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # jobs change only through their worker; cancel is an action

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        # has_change_permission is off for everyone (read-only pages); cancelling is the one
        # change a person may make, and it needs the change permission all the same.
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    @admin.action(description="Cancel selected jobs", permissions=["cancel"])
    def cancel(self, request: HttpRequest, queryset: QuerySet) -> None:
        running = list(queryset.select_related(None).exclude(status__in=Job.TERMINAL).only("id", "status"))
        for job in running:
            services.job_cancel(job.pk)
        self.message_user(request, f"Asked {len(running)} running job(s) to stop.", messages.SUCCESS)

    # -- the chunk log ---------------------------------------------------------------------------

    def get_urls(self) -> list:
        wrap = self.admin_site.admin_view
        return [
            path("<uuid:job_id>/chunks/", wrap(self.chunks_view), name="jobs_job_chunks"),
            path("<uuid:job_id>/cancel/", wrap(self.cancel_view), name="jobs_job_cancel"),
            *super().get_urls(),
        ]

    def _job(self, request: HttpRequest, job_id: uuid.UUID) -> Job:
        if not self.has_view_permission(request):
            raise Http404
        job = Job.objects.filter(pk=job_id).first()
        if job is None:
            raise Http404
        return job

    def chunks_view(self, request: HttpRequest, job_id: uuid.UUID) -> JsonResponse:
        """The chunks after ?cursor=, polled by the detail page while the job runs."""
        job = self._job(request, job_id)
        try:
            cursor = max(int(request.GET.get("cursor", 0)), 0)
        except ValueError:
            cursor = 0
        chunks = chunks_since(job, cursor)
        return JsonResponse(
            {
                "status": job.status,
                "finished": job.is_finished,
                "cursor": cursor + len(chunks),
                "chunks": chunk_rows(chunks, cursor),
                "text": text_of(chunks),
            }
        )

    def cancel_view(self, request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
        return require_POST(self._cancel)(request, job_id)

    def _cancel(self, request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
        job = self._job(request, job_id)
        if not self.has_cancel_permission(request):
            raise Http404
        if not job.is_finished:
            services.job_cancel(job.pk)
            self.message_user(request, "Asked the job to stop.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:jobs_job_change", args=[job.pk]))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        job = self.get_object(request, object_id)
        if job is None:
            # Django's own answer to an unknown id (a message and the list); not in the stubs.
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)  # type: ignore[attr-defined]
        try:
            chunks, log_unavailable = chunks_since(job, 0), False
        except redis.RedisError:
            # The rest of the page is Postgres's (and the queue's, which says so itself); the
            # log's poll keeps trying and fills the table once Redis answers.
            chunks, log_unavailable = [], True
        extra = {
            **(extra_context or {}),
            "job": job,
            "chunk_log_unavailable": log_unavailable,
            "chunk_rows": chunk_rows(chunks, 0),
            "chunk_text": text_of(chunks),
            "chunk_cursor": len(chunks),
            "chunks_url": reverse("admin:jobs_job_chunks", args=[job.pk]),
            "cancel_url": reverse("admin:jobs_job_cancel", args=[job.pk]),
        }
        return super().change_view(request, object_id, form_url, extra)
