"""ASGI entry point: long-polls and SSE streams wait on Redis without holding a thread."""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# What django.core.asgi.get_asgi_application() does, with Spool's handler (jobs/compat/asgi_handler.py).
django.setup(set_prefix=False)

from django.conf import settings  # noqa: E402
from django.core.signals import request_started  # noqa: E402  (after setup)
from django.db import close_old_connections, reset_queries  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from config import gctune  # noqa: E402
from jobs import tracing  # noqa: E402
from jobs.compat.asgi_handler import Handler  # noqa: E402
from jobs.faces.semoss.fastpoll import PollFastPath  # noqa: E402

# Before the handler loads the middleware: Django's instrumentation adds its own first.
tracing.setup("spool-web")
# The SEMOSS poll's common case is answered in front of Django (jobs/faces/semoss/fastpoll.py).
application = PollFastPath(Handler())

# Django's ASGI handler sends request_started with asend(), which runs sync receivers in a
# thread: one hop per request for these two. Under ASGI each request gets a fresh sync thread
# (asgiref's ThreadSensitiveContext), which holds no connection yet, so both are no-ops there;
# request_finished still closes the request's connections when it ran sync code, in the thread
# hop the handler then makes for response.close().
request_started.disconnect(close_old_connections)
request_started.disconnect(reset_queries)

# The views are imported now rather than by the first request, so that they are part of what the
# collector's scans leave out (config/gctune.py).
get_resolver().url_patterns  # noqa: B018
gctune.freeze_startup(settings.SPOOL.site.gc_freeze)
