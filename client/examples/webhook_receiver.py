"""Receiving Spool's webhooks in a Django view, verified with the openai SDK (README example)."""

from __future__ import annotations

import os

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from openai import OpenAI

# The endpoint's signing secret (whsec_...), shown once when it was registered.
verifier = OpenAI(api_key="unused", webhook_secret=os.environ.get("SPOOL_WEBHOOK_SECRET", ""))
events: dict[str, dict] = {}  # event id -> event; keep them in your database instead


@csrf_exempt
def spool_webhook(request: HttpRequest) -> HttpResponse:
    """POST /hooks/spool: answer at once, do the slow work elsewhere."""
    try:
        event = verifier.webhooks.unwrap(request.body, request.headers)
    except ValueError:  # InvalidWebhookSignatureError: not from Spool, altered, too old; or no headers
        return HttpResponse(status=400)
    # Delivered at least once: a retry carries the same event id, so the first one wins.
    # job.* events are Spool's own types: read their fields from the dict.
    events.setdefault(event.id, event.to_dict())
    return HttpResponse(status=200)
