"""Stored chat completions: kept at job end (store: true, any face), listed, updated, deleted."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Q

from engine.types import GenerationRequest
from jobs import search
from jobs.dbwork import db_work
from jobs.jobview import JobView
from jobs.models import Job, StoredCompletion
from jobs.paging import Page, UnknownCursor
from jobs.protocols.openai_chat import completion, completion_id

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
RELEVANCE = "relevance"  # an order for searches: best match first
_DEFAULTS = GenerationRequest(messages=[]).to_dict()


def _ms(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, round((end - start).total_seconds() * 1000))


def _request(job: Job) -> dict[str, Any]:
    """What the client asked for: the messages, and the parameters it set away from defaults."""
    params = {k: v for k, v in job.request.items() if k != "messages" and v != _DEFAULTS.get(k)}
    for name in ("stream", "store", "metadata", "service_tier"):
        if job.options.get(name):
            params[name] = job.options[name]
    return {"messages": job.request.get("messages") or [], "params": params}


def stored_completion(job: Job) -> StoredCompletion:
    """What a finished job keeps as its stored completion (not saved): built from the job as
    given, its engine loaded, no field deferred and the end's values set, so every path that ends
    a job keeps the same row (lifecycle.ended with the ORM, the worker's end statement in SQL).
    The row's search vector is computed by a database trigger from request and response, on any
    insert (jobs/search.py)."""
    return StoredCompletion(
        id=completion_id(job.pk),
        owner_id=job.owner_id,
        job=job,
        engine=job.engine,
        model=job.engine.name,
        face=job.face,
        metadata=job.options.get("metadata") or {},
        request=_request(job),
        response=completion(JobView.of(job)),
        usage=(job.result or {}).get("usage") or job.usage,
        status=job.status,
        finish_reason=job.finish_reason,
        created_at=job.created_at,
        first_token_ms=_ms(job.created_at, job.first_chunk_at),
        duration_ms=_ms(job.created_at, job.finished_at),
    )


def completion_object(stored: StoredCompletion) -> dict[str, Any]:
    """The stored chat.completion with its current metadata (metadata can change after)."""
    return {**stored.response, "metadata": stored.metadata}


def completion_update(*, stored: StoredCompletion, metadata: dict[str, str]) -> StoredCompletion:
    stored.metadata = metadata
    stored.save(update_fields=["metadata"])
    return stored


def completion_delete(*, stored: StoredCompletion) -> None:
    stored.delete()


# -- reads ---------------------------------------------------------------------------------------


async def completion_for_owner(completion_id: str, owner_id: int) -> StoredCompletion | None:
    if "\x00" in completion_id:
        return None  # no stored id holds one, and Postgres would refuse to look it up
    return await StoredCompletion.objects.filter(id=completion_id, owner_id=owner_id).afirst()


async def completion_page(
    owner_id: int,
    *,
    model: str | None = None,
    metadata: dict[str, str] | None = None,
    q: str | None = None,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
    order: str = "asc",
) -> Page:
    """One page of the owner's stored completions, ordered by (created_at, id) ("asc", "desc").

    `q` keeps those whose messages or answer match it, in websearch_to_tsquery syntax (words,
    "a phrase", `or`, `-excluded`; jobs/search.py), as the admin's search box does. With `q`,
    order "relevance" puts the best match (ts_rank_cd) first, then newest first; it ranks every
    match, so its cost grows with their number. `after` continues any of these orders."""
    query = StoredCompletion.objects.filter(owner_id=owner_id)
    if model:
        query = query.filter(model=model)
    if metadata:
        query = query.filter(metadata__contains=metadata)  # JSONB @>, served by the GIN index
    text = q.strip() if q else ""
    fields: tuple[str, ...] = ("created_at", "id")
    by_date = bool(text) and order != RELEVANCE
    if text and not by_date:
        query = search.ranked(query, text)
        fields = ("rank", *fields)
    descending = order != "asc"
    start = None  # where the page's rows begin: the cursor's date
    if after:
        named = search.matching(query, text) if by_date else query
        anchor = await named.filter(id=after).values(*fields).afirst()
        if anchor is None:
            raise UnknownCursor(after)
        query = query.filter(_after(anchor, fields, "lt" if descending else "gt"))
        start = anchor["created_at"]
    query = query.order_by(*(f"-{f}" if descending else f for f in fields))
    if by_date:
        # In the page's order, from its cursor: in_date_order checks how soon matches come there.
        # The walk takes storedcmpl_owner_created: its window is the owner's rows.
        walked = StoredCompletion.objects.filter(owner_id=owner_id)
        query = await db_work(search.in_date_order)(query, text, wanted=limit + 1, start=start, walked=walked)
    rows = [row async for row in query[: limit + 1]]
    return Page(rows[:limit], len(rows) > limit)


def _after(anchor: dict[str, Any], fields: tuple[str, ...], op: str) -> Q:
    """Rows past `anchor` in the order of `fields` (a keyset condition)."""
    condition = Q()
    for i, name in enumerate(fields):
        condition |= Q(**{f: anchor[f] for f in fields[:i]}, **{f"{name}__{op}": anchor[name]})
    return condition


def message_items(stored: StoredCompletion) -> list[dict[str, Any]]:
    """The request's messages as stored-completion messages, with ids "<completion id>-<n>"."""
    items = []
    for i, message in enumerate(stored.request.get("messages") or []):
        content = message.get("content")
        parts = content if isinstance(content, list) else None
        if parts is not None:
            # Only the OpenAI face checks parts; the others keep whatever they were sent.
            texts = [p.get("text") for p in parts if isinstance(p, dict) and p.get("type") == "text"]
            content = "".join(t for t in texts if isinstance(t, str)) or None
        item = {
            "id": f"{stored.id}-{i}",
            "role": message.get("role"),
            "content": content,
            "name": message.get("name"),
            "content_parts": parts,
        }
        for extra in ("tool_calls", "tool_call_id", "refusal"):
            if message.get(extra) is not None:
                item[extra] = message[extra]
        items.append(item)
    return items


def messages_page(stored: StoredCompletion, *, after: str | None, limit: int, order: str) -> Page:
    return items_page(message_items(stored), after=after, limit=limit, order=order)


def items_page(items: list[dict[str, Any]], *, after: str | None, limit: int, order: str) -> Page:
    """One page of a list kept in one row (items with ids), in its order ("asc") or reversed."""
    items = list(items)
    if order == "desc":
        items.reverse()
    if after:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise UnknownCursor(after)
        items = items[ids.index(after) + 1 :]
    return Page(items[:limit], len(items) > limit)
