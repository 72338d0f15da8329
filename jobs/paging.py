"""Lists the API pages with OpenAI's after / limit / order: a page of rows in (created_at, id)
order, continued after the public id of the last row seen; and the public ids themselves, a
prefix before the row's hex ("batch_…", "file-…", "we_…"; a job's is its UUID as it stands)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Any]
    has_more: bool


class UnknownCursor(LookupError):
    """`after` names nothing in the listing."""


def public_id(prefix: str, pk: Any) -> str:
    return prefix + uuid.UUID(str(pk)).hex


def pk_of(prefix: str, value: str) -> uuid.UUID | None:
    """The row id inside a public id, or None when it is not one of ours."""
    if not value.startswith(prefix):
        return None
    try:
        return uuid.UUID(hex=value.removeprefix(prefix))
    except ValueError:
        return None


def keyset_page(query: QuerySet[Any], prefix: str, *, after: str | None, limit: int, order: str) -> Page:
    """One page of `query` in (created_at, id) order ("asc" or "desc"); `after` is the public
    id of the last row seen, and must be one of the query's rows."""
    descending = order == "desc"
    if after:
        pk = pk_of(prefix, after)
        anchor = None if pk is None else query.filter(id=pk).values("created_at", "id").first()
        if anchor is None:
            raise UnknownCursor(after)
        op = "lt" if descending else "gt"
        query = query.filter(
            Q(**{f"created_at__{op}": anchor["created_at"]})
            | Q(created_at=anchor["created_at"], **{f"id__{op}": anchor["id"]})
        )
    fields = ("-created_at", "-id") if descending else ("created_at", "id")
    rows = list(query.order_by(*fields)[: limit + 1])
    return Page(rows[:limit], len(rows) > limit)
