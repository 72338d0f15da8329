"""Date-hierarchy links built from the table's first and last date, not from its rows.

Django's own date hierarchy runs SELECT DISTINCT date_trunc(...) over the filtered rows on every
page load: a scan of the whole table when nothing is filtered. These links offer every year,
month or day inside the table's date range instead; one with no rows lists nothing.
"""

from __future__ import annotations

import calendar
import datetime
from typing import Any

from django.core.cache import cache
from django.db.models import Max, Min
from django.utils import formats, timezone
from django.utils.text import capfirst

RANGE_SECONDS = 60


def date_range(model: Any, field: str) -> tuple[datetime.datetime, datetime.datetime] | None:
    """(first, last) over the whole table; min/max walk the index ends, and are cached a minute."""
    key = f"spool:admin:range:{model._meta.label_lower}:{field}"
    found = cache.get(key)
    if found is None:
        span = model.objects.aggregate(first=Min(field), last=Max(field))
        found = (span["first"], span["last"]) if span["first"] else ()
        cache.set(key, found, RANGE_SECONDS)
    if not found:
        return None
    return timezone.localtime(found[0]), timezone.localtime(found[1])


def _int(value: Any) -> int | None:
    if isinstance(value, list):
        value = value[-1] if value else None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def hierarchy(cl: Any) -> dict[str, Any]:
    """The context admin/date_hierarchy.html expects: show, back, choices."""
    field = cl.date_hierarchy
    span = date_range(cl.model, field)
    if span is None:
        return {"show": False}
    first, last = span
    year = _int(cl.params.get(f"{field}__year"))
    month = _int(cl.params.get(f"{field}__month"))
    day = _int(cl.params.get(f"{field}__day"))
    if year is None and first.year == last.year:
        year = first.year
        if first.month == last.month:
            month = first.month

    def link(filters: dict[str, Any]) -> str:
        return cl.get_query_string(filters, [f"{field}__"])

    y, m, d = f"{field}__year", f"{field}__month", f"{field}__day"
    if year and month and day:
        when = datetime.date(year, month, day)
        return {
            "show": True,
            "back": {
                "link": link({y: year, m: month}),
                "title": formats.date_format(when, "YEAR_MONTH_FORMAT"),
            },
            "choices": [{"title": capfirst(formats.date_format(when, "MONTH_DAY_FORMAT"))}],
        }
    if year and month:
        days = range(1, calendar.monthrange(year, month)[1] + 1)
        inside = [n for n in days if first.date() <= datetime.date(year, month, n) <= last.date()]
        return {
            "show": True,
            "back": {"link": link({y: year}), "title": str(year)},
            "choices": [
                {
                    "link": link({y: year, m: month, d: n}),
                    "title": capfirst(formats.date_format(datetime.date(year, month, n), "MONTH_DAY_FORMAT")),
                }
                for n in inside
            ],
        }
    if year:
        months = [
            n for n in range(1, 13) if (first.year, first.month) <= (year, n) <= (last.year, last.month)
        ]
        return {
            "show": True,
            "back": {"link": link({}), "title": "All dates"},
            "choices": [
                {
                    "link": link({y: year, m: n}),
                    "title": capfirst(formats.date_format(datetime.date(year, n, 1), "YEAR_MONTH_FORMAT")),
                }
                for n in months
            ],
        }
    return {
        "show": True,
        "back": None,
        "choices": [{"link": link({y: n}), "title": str(n)} for n in range(first.year, last.year + 1)],
    }
