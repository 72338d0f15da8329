"""A ModelAdmin base for tables of millions of rows: bounded counts, no facet counts, cheap dates."""

from __future__ import annotations

from functools import cached_property
from typing import Any, cast

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest

from jobs.admin import dates
from jobs.admin.paging import PAGES_AHEAD, BoundedPaginator, page_number


class LargeTableChangeList(ChangeList):
    @cached_property
    def date_links(self) -> dict[str, Any]:
        return dates.hierarchy(self)

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        self.result_list = cast(LargeTableAdmin, self.model_admin).decorate_page(list(self.result_list))

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet:
        queryset = super().get_queryset(request, exclude_parameters)
        return cast(LargeTableAdmin, self.model_admin).list_rows(queryset)


class LargeTableAdmin(admin.ModelAdmin):
    """Subclasses set `list_defer` (big columns the list never shows) and may add to the page's
    rows in `decorate_page`. Sorting is by created_at only: any other column would sort every matching row."""

    change_list_template = "admin/jobs/large_change_list.html"
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    sortable_by = ["created_at"]
    date_hierarchy = "created_at"
    list_defer: tuple[str, ...] = ()

    def list_rows(self, queryset: QuerySet) -> QuerySet:
        return queryset.defer(*self.list_defer) if self.list_defer else queryset

    def pages_ahead(self, request: HttpRequest) -> int:
        """How many pages past the one shown the paginator counts."""
        return PAGES_AHEAD

    def decorate_page(self, rows: list[Any]) -> list[Any]:
        """Add to the rows of the page shown what is too costly to compute for every matching row."""
        return rows

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return LargeTableChangeList

    def get_paginator(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        per_page: int,
        orphans: int = 0,
        allow_empty_first_page: bool = True,
    ) -> BoundedPaginator:
        return BoundedPaginator(
            queryset,
            per_page,
            page_number=page_number(request),
            pages_ahead=self.pages_ahead(request),
            # The admin offers "Show all" (every row on one page) when the count is at most
            # list_max_show_all; a count past the limit is only a floor, so the limit must not
            # be below it, or "Show all" would render every matching row.
            at_least=self.list_max_show_all,
            orphans=orphans,
            allow_empty_first_page=allow_empty_first_page,
        )
