"""Django's messages (the admin's "Revoked 3 API keys") for pages only: no API answer shows
one, and building the message storage (a cookie signer and a session store) was a measurable
part of every poll's cost (docs/PERFORMANCE.md, "Issue 29 (3)")."""

from __future__ import annotations

from django.contrib.messages.middleware import MessageMiddleware
from django.http import HttpRequest

from jobs.faces.common.middleware import API_PREFIXES


class PageMessageMiddleware(MessageMiddleware):
    # Django's process_response saves nothing for a request it gave no storage.
    def process_request(self, request: HttpRequest) -> None:
        if not request.path.startswith(API_PREFIXES):
            super().process_request(request)
