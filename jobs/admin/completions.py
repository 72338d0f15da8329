"""Admin for stored completions: filter by metadata, model, engine, status and date; read one; export."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.views.main import SEARCH_VAR
from django.db.models import F, Func, QuerySet, TextField, Value
from django.db.models.functions import Left
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html_join
from django.utils.text import smart_split, unescape_string_literal

from jobs import search
from jobs.admin import export, readable
from jobs.admin.filters import MetadataFilter, RecentValuesFilter, parse_pair
from jobs.admin.largetable import LargeTableAdmin
from jobs.admin.paging import count_limit, page_number
from jobs.models import StoredCompletion, StoredResponse

PREVIEW_CHARS = 90
# Search results count only as far as the page shown plus one row ("more than 100": there is a
# next page), not ten pages ahead: each candidate of a phrase or an exclusion is checked against
# its stored vector, and counting 1,101 matches of '"good lord"' at 1M rows read 73,000 rows
# (240-490 ms) where 101 read about 5,000 (docs/DASHBOARD.md).
SEARCH_PAGES_AHEAD = 0
# A bulk delete lists this many of the rows it will delete; it states how many in all.
DELETE_SAMPLE = 20


class JsonPathArray(Func):
    """jsonb_path_query_array(column, path): every value the path finds, as one JSON array."""

    function = "jsonb_path_query_array"
    output_field = TextField()


LAST_USER_TEXT = Func(
    JsonPathArray(F("request"), Value('$.messages[*] ? (@.role == "user").content')),
    Value(-1),
    arg_joiner=" ->> ",
    template="(%(expressions)s)",
    output_field=TextField(),
)
ANSWER_TEXT = Func(
    F("response"),
    Value("{choices,0,message,content}"),
    arg_joiner=" #>> ",
    template="(%(expressions)s)",
    output_field=TextField(),
)


def split_search(query: str) -> tuple[dict[str, str], str]:
    """`key=value` terms (quoted or not) become a metadata filter; the other terms, as typed
    ("phrases" keep their quotes, `or`, `-word`), are the full-text query."""
    pairs: dict[str, str] = {}
    words: list[str] = []
    for raw in smart_split(query):
        quoted = raw[:1] in "\"'" and raw[-1:] == raw[:1] and len(raw) > 1
        pair = parse_pair(unescape_string_literal(raw) if quoted else raw)
        if pair is not None:
            pairs[pair[0]] = pair[1]
        elif raw.strip():
            words.append(raw)
    return pairs, " ".join(words)


def search_text(request: HttpRequest) -> str:
    """The full-text part of what the search box holds."""
    return split_search(request.GET.get(SEARCH_VAR, ""))[1]


class SearchOrder(admin.SimpleListFilter):
    """How search results are ordered: newest first, as every list here is (the page is an index
    walk that stops at 100 matches), or most relevant first (ts_rank_cd of every match: its cost
    grows with the number of matches: 0.4-0.8 s for 46,000 at 1M rows; docs/DASHBOARD.md)."""

    title = "order of search results"
    parameter_name = "by"
    RELEVANCE = "relevance"

    def __init__(self, request: HttpRequest, params: dict, model: Any, model_admin: Any) -> None:
        super().__init__(request, params, model, model_admin)
        self.searching = bool(search_text(request))

    def has_output(self) -> bool:
        return self.searching

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(self.RELEVANCE, "most relevant first")]

    def choices(self, changelist: Any) -> Any:
        for choice in super().choices(changelist):
            if choice["display"] == "All":
                choice["display"] = "newest first"
            yield choice

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset  # get_search_results ranks and orders


class StoredColumns:
    """The list columns every stored object (completion, response) shows the same way."""

    @admin.display(description="metadata")
    def metadata_pairs(self, stored: StoredCompletion | StoredResponse) -> str:
        pairs = sorted((stored.metadata or {}).items()) if isinstance(stored.metadata, dict) else []
        return format_html_join(" ", '<span class="spool-pair">{}={}</span>', pairs)

    @admin.display(description="tokens in/out")
    def tokens(self, stored: StoredCompletion | StoredResponse) -> str:
        usage = stored.usage or {}
        if not usage:
            return "-"
        return f"{usage.get('input_tokens', 0):,} / {usage.get('output_tokens', 0):,}"


@admin.register(StoredCompletion)
class StoredCompletionAdmin(StoredColumns, LargeTableAdmin):
    change_list_template = "admin/jobs/storedcompletion/change_list.html"
    change_form_template = "admin/jobs/storedcompletion/change_form.html"
    list_display = [
        "short_id", "created_at", "model", "owner", "status", "finish_reason", "prompt", "answer",
        "metadata_pairs", "tokens", "first_token", "duration",
    ]  # fmt: skip
    list_filter = [
        SearchOrder,
        MetadataFilter,
        ("model", RecentValuesFilter),
        "engine",
        "status",
        ("finish_reason", RecentValuesFilter),
    ]
    list_select_related = ["owner"]
    list_defer = ("request", "response", "search")
    # "Show all" only within one page: a search then counts 101 rows, not 201 (SEARCH_PAGES_AHEAD).
    list_max_show_all = 100
    search_fields = ["id"]  # only so the search box shows; get_search_results does the work
    search_help_text = (
        'Words search what was said (stemmed: "daughters" finds daughter); "a phrase", or, -exclude; '
        "key=value terms filter metadata (team=search)."
    )
    actions = ["delete_selected"]
    fields = [
        "id", "job", "owner", "engine", "model", "face", "status", "finish_reason", "created_at",
        "first_token_ms", "duration_ms", "tokens",
    ]  # fmt: skip
    readonly_fields = fields  # type: ignore[assignment]  # the same names, all plain strings

    # -- list ------------------------------------------------------------------------------------

    def decorate_page(self, rows: list[StoredCompletion]) -> list[StoredCompletion]:
        # Excerpts cut in Postgres for this page's rows only: computed in the list query, they
        # would be worked out for every matching row before the sort picks the page.
        excerpts = StoredCompletion.objects.filter(pk__in=[row.pk for row in rows]).values_list(
            "pk", Left(LAST_USER_TEXT, PREVIEW_CHARS), Left(ANSWER_TEXT, PREVIEW_CHARS)
        )
        found = {pk: (prompt, answer) for pk, prompt, answer in excerpts}
        for row in rows:
            # Attributes of this page's rows only, read back by the two columns below.
            row.prompt_preview, row.answer_preview = found.get(row.pk, ("", ""))  # type: ignore[attr-defined]
        return rows

    @admin.display(description="id", ordering="created_at")
    def short_id(self, stored: StoredCompletion) -> str:
        return stored.id.removeprefix("chatcmpl-")[:12]

    @admin.display(description="prompt")
    def prompt(self, stored: StoredCompletion) -> str:
        return getattr(stored, "prompt_preview", "") or ""

    @admin.display(description="answer")
    def answer(self, stored: StoredCompletion) -> str:
        return getattr(stored, "answer_preview", "") or ""

    @admin.display(description="first token")
    def first_token(self, stored: StoredCompletion) -> str:
        return "-" if stored.first_token_ms is None else f"{stored.first_token_ms:,} ms"

    @admin.display(description="duration")
    def duration(self, stored: StoredCompletion) -> str:
        return "-" if stored.duration_ms is None else f"{stored.duration_ms / 1000:,.2f} s"

    def pages_ahead(self, request: HttpRequest) -> int:
        if search_text(request):
            return SEARCH_PAGES_AHEAD
        return super().pages_ahead(request)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple:
        pairs, text = split_search(search_term)
        if pairs:
            queryset = queryset.filter(metadata__contains=pairs)
        if text and request.GET.get(SearchOrder.parameter_name) == SearchOrder.RELEVANCE:
            # The changelist set its ordering before searching: replace it.
            queryset = search.ranked(queryset, text).order_by("-rank", "-created_at", "-id")
        elif text and self.reads_one_page(request):
            # The page and the bounded count read this many matches in the list's order at most.
            limit = count_limit(
                page_number(request), self.list_per_page, self.pages_ahead(request), self.list_max_show_all
            )
            queryset = search.in_date_order(queryset, text, wanted=limit + 1)
        elif text:
            queryset = search.matching(queryset, text)
        return queryset, False

    def reads_one_page(self, request: HttpRequest) -> bool:
        """Whether the search feeds the list page (GET): an export or an action over every
        match (POST with select_across) reads them all, which in_date_order's few ids are not."""
        match = request.resolver_match
        return (
            request.method == "GET"
            and match is not None
            and match.url_name == "jobs_storedcompletion_changelist"
        )

    # -- detail ----------------------------------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made by jobs with store: true, never by hand

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a record of what happened: read it or delete it

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        stored = self.get_object(request, object_id)
        if stored is None:
            # Django's own answer to an unknown id (a message and the list); not in the stubs.
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)  # type: ignore[attr-defined]
        shown = readable.context(stored)
        list_url = reverse("admin:jobs_storedcompletion_changelist")
        links = [
            (k, v, f"{list_url}?{urlencode({MetadataFilter.PAIR: f'{k}={v}'})}") for k, v in shown["metadata"]
        ]
        extra = {**(extra_context or {}), "readable": shown, "metadata_links": links}
        return super().change_view(request, object_id, form_url, extra)

    # -- export and bulk delete ------------------------------------------------------------------

    def get_urls(self) -> list:
        view = self.admin_site.admin_view(self.export_view)
        return [path("export/<str:fmt>/", view, name="jobs_storedcompletion_export"), *super().get_urls()]

    def export_view(self, request: HttpRequest, fmt: str) -> HttpResponseBase:
        if fmt not in export.FORMATS:
            raise Http404("Unknown export format.")
        if not self.has_view_permission(request):
            raise Http404("Unknown export format.")
        changelist = self.get_changelist_instance(request)
        return export.export_response(request, changelist.get_queryset(request), fmt)

    @admin.action(description="Delete selected stored completions", permissions=["delete"])
    def delete_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        """Django's own bulk delete lists every row it will delete; with "select all" over a
        million rows that page would never render. This one shows a count and a sample."""
        if request.POST.get("post") == "yes":
            deleted, _ = queryset.delete()
            self.message_user(request, f"Deleted {deleted:,} stored completion(s).", messages.SUCCESS)
            return None
        rows = queryset.order_by().values("pk")
        total = rows.count()
        context = {
            **self.admin_site.each_context(request),
            "title": "Delete stored completions?",
            "opts": self.opts,
            "total": total,
            "sample": list(queryset.order_by("-created_at")[:DELETE_SAMPLE]),
            "queryset": queryset,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "select_across": request.POST.get("select_across", "0"),
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "query_string": request.GET.urlencode(),
        }
        return TemplateResponse(request, "admin/jobs/storedcompletion/bulk_delete.html", context)
