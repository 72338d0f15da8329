"""Relaying a Spool job's events to a browser through your own Django views (README example)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

from django.http import HttpRequest, StreamingHttpResponse
from spool_client import Spool

spool = Spool(os.environ.get("SPOOL_URL", "http://127.0.0.1:8000"), os.environ.get("SPOOL_API_KEY", ""))
ENGINE = os.environ.get("SPOOL_ENGINE", "spool-offline")


def _sse(events: Iterator[str] | AsyncIterator[str]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    return response


def ask(request: HttpRequest) -> StreamingHttpResponse:
    """GET /ask?q=...: start a job and relay its events as they come (WSGI or ASGI)."""
    stream = spool.stream(ENGINE, request.GET["q"], parameters={"max_completion_tokens": 200})
    return _sse(stream.iter_events())


async def ask_async(request: HttpRequest) -> StreamingHttpResponse:
    """The same as an async view: under ASGI no thread waits while the job runs."""
    stream = await spool.async_stream(ENGINE, request.GET["q"], parameters={"max_completion_tokens": 200})
    return _sse(stream.async_iter_events())


async def job_events(request: HttpRequest, job_id: str) -> StreamingHttpResponse:
    """GET /jobs/<job_id>/events: the relayed ids are Spool's sequence numbers, so a browser's
    EventSource that reconnects with Last-Event-ID goes on exactly where it was."""
    after = int(request.headers.get("Last-Event-ID") or -1)
    return _sse(spool.events(job_id, after=after).async_iter_events())
