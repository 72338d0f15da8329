"""Stored completions as JSON Lines or CSV, streamed row by row from a server-side cursor."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone

from jobs.models import StoredCompletion

CHUNK_ROWS = 500
CSV_COLUMNS = [
    "id", "created_at", "model", "engine", "owner", "face", "status", "finish_reason",
    "prompt_tokens", "completion_tokens", "first_token_ms", "duration_ms", "metadata",
    "prompt", "response",
]  # fmt: skip


def _last_user_text(stored: StoredCompletion) -> str:
    for message in reversed((stored.request or {}).get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
            return content if isinstance(content, str) else ""
    return ""


def _answer_text(stored: StoredCompletion) -> str:
    choices = (stored.response or {}).get("choices") or []
    return (choices[0].get("message") or {}).get("content") or "" if choices else ""


def record(stored: StoredCompletion) -> dict[str, Any]:
    """One JSON Lines record: the whole row, with the engine and owner by name."""
    return {
        "id": stored.id,
        "created_at": stored.created_at.isoformat(),
        "model": stored.model,
        "engine": stored.engine.name if stored.engine else None,
        "owner": stored.owner.get_username(),
        "face": stored.face,
        "status": stored.status,
        "finish_reason": stored.finish_reason,
        "metadata": stored.metadata,
        "usage": stored.usage,
        "first_token_ms": stored.first_token_ms,
        "duration_ms": stored.duration_ms,
        "request": stored.request,
        "response": stored.response,
    }


def csv_row(stored: StoredCompletion) -> list[Any]:
    usage = stored.usage or {}
    return [
        stored.id,
        stored.created_at.isoformat(),
        stored.model,
        stored.engine.name if stored.engine else "",
        stored.owner.get_username(),
        stored.face,
        stored.status,
        stored.finish_reason,
        usage.get("input_tokens", ""),
        usage.get("output_tokens", ""),
        stored.first_token_ms if stored.first_token_ms is not None else "",
        stored.duration_ms if stored.duration_ms is not None else "",
        json.dumps(stored.metadata, ensure_ascii=False, sort_keys=True),
        _last_user_text(stored),
        _answer_text(stored),
    ]


def jsonl_line(stored: StoredCompletion) -> str:
    return json.dumps(record(stored), ensure_ascii=False) + "\n"


def csv_line(row: list[Any]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(row)
    return out.getvalue()


FORMATS: dict[str, tuple[str, str, Callable[[StoredCompletion], str]]] = {
    "jsonl": ("application/jsonl; charset=utf-8", "jsonl", jsonl_line),
    "csv": ("text/csv; charset=utf-8", "csv", lambda stored: csv_line(csv_row(stored))),
}


def _lines(queryset: QuerySet, line: Callable[[StoredCompletion], str], header: str) -> Iterator[str]:
    if header:
        yield header
    for stored in queryset.iterator(chunk_size=CHUNK_ROWS):
        yield line(stored)


async def _alines(
    queryset: QuerySet, line: Callable[[StoredCompletion], str], header: str
) -> AsyncIterator[str]:
    if header:
        yield header
    async for stored in queryset.aiterator(chunk_size=CHUNK_ROWS):
        yield line(stored)


def export_response(request: HttpRequest, queryset: QuerySet, fmt: str) -> StreamingHttpResponse:
    content_type, extension, line = FORMATS[fmt]
    rows = queryset.select_related("owner", "engine").defer(None).order_by("-created_at", "-id")
    header = csv_line(CSV_COLUMNS) if fmt == "csv" else ""
    # Each server gets the iterator it can stream: an ASGI server reads a sync one whole first,
    # a WSGI server an async one.
    lines = _alines if isinstance(request, ASGIRequest) else _lines
    response = StreamingHttpResponse(lines(rows, line, header), content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="stored-completions-{stamp}.{extension}"'
    return response
