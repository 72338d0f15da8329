"""adrf's async APIView with its request handling done on the event loop.

adrf's own async dispatch runs DRF's `initial` (authentication, permissions, throttles) through
sync_to_async, a thread hop (with async_to_sync inside it) on every request. This dispatch is
adrf's, awaiting async authenticators directly instead; DRF reads which authenticator answered
from the request's private `_authenticator` (to answer 401 rather than 403), so it is set as
DRF's own Request._authenticate sets it. tests/test_compat.py holds the digests of the adrf and
DRF code this follows and fails when an upgrade changes it.

adrf's `dispatch` also asks the class's `view_is_async` on every request, a property that
inspects each of its handlers (3% of a long-poll's CPU); a class's handlers do not change, so it
is asked once per class here."""

from __future__ import annotations

from typing import Any

from adrf.views import APIView
from asgiref.sync import iscoroutinefunction
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponseBase
from rest_framework import exceptions
from rest_framework.request import Request

_is_async: dict[type[APIView], bool] = {}


class OnLoopAPIView(APIView):
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        view_class = type(self)
        is_async = _is_async.get(view_class)
        if is_async is None:
            is_async = _is_async[view_class] = bool(view_class.view_is_async)
        if is_async:
            return self.async_dispatch(request, *args, **kwargs)
        return self.sync_dispatch(request, *args, **kwargs)

    async def async_dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        self.args, self.kwargs = args, kwargs
        drf_request = self.initialize_request(request, *args, **kwargs)
        self.request = drf_request
        self.headers = self.default_response_headers
        try:
            await self.ainitial(drf_request)
            name = drf_request.method.lower()
            handler = getattr(self, name, None) if name in self.http_method_names else None
            if handler is None:
                handler = self.http_method_not_allowed
            if iscoroutinefunction(handler):
                response = await handler(drf_request, *args, **kwargs)
            else:
                response = handler(drf_request, *args, **kwargs)
        except Exception as exc:
            response = self.handle_exception(exc)
        self.response = self.finalize_response(drf_request, response, *args, **kwargs)
        return self.response

    async def ainitial(self, request: Request) -> None:
        """DRF's initial, awaited: override to add checks after authentication."""
        raise NotImplementedError

    async def aauthenticate(self, request: Request) -> None:
        """DRF's Request._authenticate with each (async) authenticator awaited."""
        user, auth, authenticator = AnonymousUser(), None, None
        for candidate in self.get_authenticators():
            try:
                found = await candidate.authenticate(request)
            except exceptions.APIException:
                request._authenticator = candidate  # type: ignore[attr-defined]
                raise
            if found is not None:
                (user, auth), authenticator = found, candidate
                break
        request._authenticator = authenticator  # type: ignore[attr-defined]
        request.user, request.auth = user, auth
