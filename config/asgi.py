"""ASGI entry point: long-polls and SSE streams wait on Redis without holding a thread."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_asgi_application()

from django.core.signals import request_started  # noqa: E402  (after setup)
from django.db import close_old_connections, reset_queries  # noqa: E402

# Django's ASGI handler sends request_started with asend(), which runs sync receivers in a
# thread: one hop per request for these two. Under ASGI each request gets a fresh sync thread
# (asgiref's ThreadSensitiveContext), which holds no connection yet, so both are no-ops there;
# request_finished still closes the request's connections, in the thread hop Django's handler
# makes anyway for response.close().
request_started.disconnect(close_old_connections)
request_started.disconnect(reset_queries)
