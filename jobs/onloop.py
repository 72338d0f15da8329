"""Django's stock middleware, and WhiteNoise, run on the event loop.

Under ASGI, Django runs each MiddlewareMixin hook (process_request, process_view,
process_response) through sync_to_async: a thread hop each, several per request, all through the
request's one sync thread. With signed-cookie sessions none of these hooks does I/O (the session
is the cookie, the user is loaded lazily, messages live in the cookie or that session), so they
run inline here: microseconds each instead of a hop. Sync views (the admin) still get their
thread from Django's handler."""

from __future__ import annotations

from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware as _Authentication
from django.contrib.messages.middleware import MessageMiddleware as _Messages
from django.contrib.sessions.middleware import SessionMiddleware as _Session
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware as _XFrame
from django.middleware.common import CommonMiddleware as _Common
from django.middleware.csrf import CsrfViewMiddleware as _Csrf
from django.middleware.security import SecurityMiddleware as _Security
from whitenoise.middleware import WhiteNoiseMiddleware as _WhiteNoise


class _OnLoop:
    """Mixed into a MiddlewareMixin subclass: under ASGI its hooks are called directly, on the
    loop (MiddlewareMixin's own __acall__ would hop to a thread for each)."""

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.process_request(request) if hasattr(self, "process_request") else None
        if response is None:
            response = await self.get_response(request)
        if hasattr(self, "process_response"):
            response = self.process_response(request, response)
        return response


class SecurityMiddleware(_OnLoop, _Security):
    pass


class SessionMiddleware(_OnLoop, _Session):
    def __init__(self, get_response: Any) -> None:
        # Inline is safe only while loading and saving a session does no I/O.
        if settings.SESSION_ENGINE != "django.contrib.sessions.backends.signed_cookies":
            raise ImproperlyConfigured("jobs.onloop.SessionMiddleware needs signed-cookie sessions.")
        super().__init__(get_response)


class CommonMiddleware(_OnLoop, _Common):
    pass


class CsrfViewMiddleware(_OnLoop, _Csrf):
    # Django's handler calls process_view itself, through sync_to_async unless it is async.
    async def process_view(self, request: HttpRequest, callback: Any, args: Any, kwargs: Any) -> Any:
        return super().process_view(request, callback, args, kwargs)


class AuthenticationMiddleware(_OnLoop, _Authentication):
    pass


class MessageMiddleware(_OnLoop, _Messages):
    pass


class XFrameOptionsMiddleware(_OnLoop, _XFrame):
    pass


class WhiteNoiseMiddleware(_WhiteNoise):
    """WhiteNoise's lookup (a dict, or the finders in development) on the loop; only a static
    file's answer leaves it (Django reads its file in a thread). WhiteNoise itself is sync-only."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any = None, settings: Any = settings) -> None:
        super().__init__(get_response, settings)
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        static_file = (
            self.find_file(request.path_info) if self.autorefresh else self.files.get(request.path_info)
        )
        if static_file is not None:
            response = self.serve(static_file, request)
            return self._answer(response) if self.async_mode else response
        return self.get_response(request)

    @staticmethod
    async def _answer(response: HttpResponseBase) -> HttpResponseBase:
        return response
