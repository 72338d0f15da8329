"""Django's stock middleware runs on the event loop under ASGI: no hook goes through a thread."""

from __future__ import annotations

import asyncio

from asgiref.sync import SyncToAsync, iscoroutinefunction
from django.core.handlers.asgi import ASGIHandler
from django.test import AsyncRequestFactory

from jobs.compat import onloop


def test_the_async_handler_calls_no_stock_middleware_hook_through_sync_to_async(monkeypatch):
    hops = []
    real = onloop.MiddlewareMixin.__acall__

    async def counting(self, request):  # MiddlewareMixin's own, which hops per hook
        hops.append(type(self).__name__)
        return await real(self, request)

    monkeypatch.setattr(onloop.MiddlewareMixin, "__acall__", counting)
    handler = ASGIHandler()  # builds the chain from settings.MIDDLEWARE, in async mode
    response = asyncio.run(handler.get_response_async(AsyncRequestFactory().get("/no-such-page/")))
    assert response.status_code == 404 and hops == []
    # CSRF's process_view, which Django's handler calls itself, is awaited as it is: no thread.
    assert handler._view_middleware and not any(isinstance(m, SyncToAsync) for m in handler._view_middleware)
    assert all(iscoroutinefunction(m) for m in handler._view_middleware)
