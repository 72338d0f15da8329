"""List filters whose choices cost a few thousand rows, not a scan of the table.

Choices come from the SAMPLE most recent rows (an index walk on created_at), cached for a
minute; a value seen only in older rows can still be filtered by typing it (`key=value` in the
search box for metadata) or in the URL.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.cache import cache
from django.db import connections
from django.db.models import Model, QuerySet
from django.http import HttpRequest

SAMPLE = 5000
MAX_CHOICES = 40
CACHE_SECONDS = 60


def _rows(model: type[Model], sql: str, params: list[Any]) -> list[tuple]:
    table = connections["default"].ops.quote_name(model._meta.db_table)
    with connections["default"].cursor() as cursor:
        cursor.execute(sql.format(table=table), params)
        return cursor.fetchall()


def _cached(key: str, compute: Any) -> Any:
    found = cache.get(key)
    if found is None:
        found = compute()
        cache.set(key, found, CACHE_SECONDS)
    return found


def recent_values(model: type[Model], column: str) -> list[str]:
    """The distinct values of a column among the most recent rows."""

    def compute() -> list[str]:
        sql = (
            "SELECT DISTINCT v FROM (SELECT {column} AS v FROM {table} ORDER BY created_at DESC LIMIT %s) s "
            "WHERE v IS NOT NULL AND v <> '' ORDER BY v LIMIT %s"
        ).replace("{column}", connections["default"].ops.quote_name(column))
        return [row[0] for row in _rows(model, sql, [SAMPLE, MAX_CHOICES])]

    return _cached(f"spool:admin:values:{model._meta.label_lower}:{column}", compute)


def metadata_keys(model: type[Model]) -> list[str]:
    """The metadata keys of the most recent rows, most used first."""

    def compute() -> list[str]:
        sql = (
            "SELECT k FROM (SELECT metadata FROM {table} ORDER BY created_at DESC LIMIT %s) s "
            "CROSS JOIN LATERAL jsonb_object_keys(CASE WHEN jsonb_typeof(s.metadata) = 'object' "
            "THEN s.metadata ELSE '{{}}'::jsonb END) k GROUP BY k ORDER BY count(*) DESC, k LIMIT %s"
        )
        return [row[0] for row in _rows(model, sql, [SAMPLE, MAX_CHOICES])]

    return _cached(f"spool:admin:metakeys:{model._meta.label_lower}", compute)


def metadata_values(model: type[Model], key: str) -> list[str]:
    """The values one metadata key takes in the most recent rows, most used first."""

    def compute() -> list[str]:
        sql = (
            "SELECT v FROM (SELECT metadata ->> %s AS v FROM {table} ORDER BY created_at DESC LIMIT %s) s "
            "WHERE v IS NOT NULL GROUP BY v ORDER BY count(*) DESC, v LIMIT %s"
        )
        return [row[0] for row in _rows(model, sql, [key, SAMPLE, MAX_CHOICES])]

    return _cached(f"spool:admin:metavalues:{model._meta.label_lower}:{key.encode().hex()}", compute)


class RecentValuesFilter(admin.AllValuesFieldListFilter):
    """AllValuesFieldListFilter without its SELECT DISTINCT over the whole table."""

    def __init__(self, field: Any, request: HttpRequest, params: dict, model: Any, model_admin: Any,
                 field_path: str) -> None:  # fmt: skip
        super().__init__(field, request, params, model, model_admin, field_path)
        choices = recent_values(model, field.column)
        chosen = [v for v in self.lookup_val or [] if v not in choices]
        # The template iterates the values; the stubs know the parent's queryset of them only.
        self.lookup_choices = sorted([*choices, *chosen])  # type: ignore[assignment]


def parse_pair(text: str) -> tuple[str, str] | None:
    """'key=value' -> (key, value); the key holds no '=', the value may."""
    key, sep, value = text.partition("=")
    key = key.strip()
    return (key, value) if sep and key else None


class MetadataFilter(admin.ListFilter):
    """Pick a key, then one of its values; pairs on different keys combine (all must match).

    Query string: `meta=key=value` (repeated, one per key) and `meta_key=key` (the key whose values
    are listed). The filter is JSONB containment, which the jsonb_path_ops GIN index serves.
    """

    title = "metadata"
    template = "admin/jobs/metadata_filter.html"
    PAIR = "meta"
    KEY = "meta_key"

    def __init__(self, request: HttpRequest, params: dict, model: Any, model_admin: Any) -> None:
        super().__init__(request, params, model, model_admin)
        self.model = model
        self.pairs: dict[str, str] = {}
        for raw in params.pop(self.PAIR, []):
            pair = parse_pair(raw)
            if pair is not None:
                self.pairs[pair[0]] = pair[1]
        chosen = params.pop(self.KEY, [])
        self.key = chosen[-1] if chosen else None
        if self.pairs:
            # A list: the parameter repeats, as Django's own filters keep it since 5.0.
            self.used_parameters[self.PAIR] = [f"{k}={v}" for k, v in self.pairs.items()]  # type: ignore[assignment]

    def has_output(self) -> bool:
        return True

    def expected_parameters(self) -> list[str | None]:
        return [self.PAIR, self.KEY]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(metadata__contains=self.pairs) if self.pairs else queryset

    def _with(self, changelist: Any, pairs: dict[str, str], key: str | None) -> str:
        encoded = [f"{k}={v}" for k, v in pairs.items()] or None
        return changelist.get_query_string({self.PAIR: encoded, self.KEY: key})

    def choices(self, changelist: Any) -> list[dict[str, Any]]:  # type: ignore[override]  # a list iterates
        """Active pairs (each links to its removal), the keys, and the chosen key's values."""
        out: list[dict[str, Any]] = []
        for key, value in self.pairs.items():
            rest = {k: v for k, v in self.pairs.items() if k != key}
            out.append(
                {
                    "kind": "active",
                    "display": f"{key} = {value}",
                    "query_string": self._with(changelist, rest, self.key),
                }
            )
        for key in metadata_keys(self.model):
            chosen = key == self.key
            out.append(
                {
                    "kind": "key",
                    "display": key,
                    "selected": chosen,
                    "query_string": self._with(changelist, self.pairs, None if chosen else key),
                }
            )
        if self.key:
            for value in metadata_values(self.model, self.key):
                out.append(
                    {
                        "kind": "value",
                        "display": value,
                        "selected": self.pairs.get(self.key) == value,
                        "query_string": self._with(changelist, {**self.pairs, self.key: value}, None),
                    }
                )
        return out
