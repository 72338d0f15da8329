"""A paginator that never counts a whole large table: it counts only as far as a person can page."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet

# Count at most this many pages past the one shown: enough for the page links, and the cost of a
# count stays proportional to how deep someone has paged, not to the table's size.
PAGES_AHEAD = 10


def estimated_rows(queryset: QuerySet) -> int:
    """The planner's row estimate for the whole table (kept fresh by autovacuum's ANALYZE)."""
    table = queryset.model._meta.db_table
    with connections[queryset.db].cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", [table])
        row = cursor.fetchone()
    return max(int(row[0]) if row and row[0] is not None else 0, 0)


def count_limit(page_number: int, per_page: int, pages_ahead: int, at_least: int = 0) -> int:
    """How many rows a bounded count reads at most (one more tells that there are more)."""
    return max((max(page_number, 1) + pages_ahead) * per_page, at_least)


class BoundedPaginator(Paginator):
    """Counts the filtered rows with `COUNT(*) FROM (... LIMIT n)`, n reaching PAGES_AHEAD pages
    past the current one. When there are more, the whole table's estimate stands in for an
    unfiltered list ("about N"), and a filtered list says "more than N"."""

    object_list: QuerySet[Any]

    def __init__(
        self,
        object_list: QuerySet,
        per_page: int,
        *,
        page_number: int = 1,
        pages_ahead: int = PAGES_AHEAD,
        at_least: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(object_list, per_page, **kwargs)
        self.limit = count_limit(page_number, per_page, pages_ahead, at_least)
        self.more = False  # rows exist past `limit`: the count is a floor
        self.estimated = False  # the count is the planner's estimate for the whole table

    @cached_property
    def count(self) -> int:
        counted = self.object_list.order_by().values("pk")[: self.limit + 1].count()
        if counted <= self.limit:
            return counted
        if not self.object_list.query.where:
            estimate = estimated_rows(self.object_list)
            if estimate > self.limit:
                self.estimated = True
                return estimate
        self.more = True
        return counted

    @property
    def count_label(self) -> str:
        if self.estimated:
            return f"about {self.count:,}"
        if self.more:
            return f"more than {self.limit:,}"
        return f"{self.count:,}"


def page_number(request: Any) -> int:
    try:
        return max(int(request.GET.get("p", 1)), 1)
    except (TypeError, ValueError):
        return 1
