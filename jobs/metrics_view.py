"""GET /metrics on the web: the metrics of every web process, and the queue depth."""

from __future__ import annotations

import asyncio

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST

from jobs import metrics


async def metrics_view(request: HttpRequest) -> HttpResponse:
    depth = metrics.QueueDepth(settings.SPOOL.broker.url, [settings.SPOOL.broker.queue])
    # Reading the files of every process and asking the broker block: off the event loop.
    body = await asyncio.to_thread(metrics.exposition, depth)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
