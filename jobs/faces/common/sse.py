"""The one SSE writer of every face: the response head, and one keep-alive period."""

from __future__ import annotations

from collections.abc import AsyncIterator

from django.http import StreamingHttpResponse

# A stream with nothing new sends a comment this often, so idle proxies keep it open (many
# cut a silent connection at 30 or 60 s).
KEEPALIVE_SECONDS = 10.0
# A comment line: every SSE parser ignores it.
KEEPALIVE = b": keep-alive\n\n"


def stream(
    events: AsyncIterator[bytes] | AsyncIterator[str], headers: dict[str, str] | None = None
) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx would otherwise buffer the whole stream
    for name, value in (headers or {}).items():
        response[name] = value
    return response
