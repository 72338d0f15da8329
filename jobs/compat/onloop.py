"""Django's stock middleware, and WhiteNoise, run on the event loop under ASGI.

Under ASGI, Django runs each MiddlewareMixin hook (process_request, process_view,
process_response) through sync_to_async: a thread hop each, about a dozen per request, all through
the request's one sync thread (bench/hops.py: ~150 µs of CPU each). With signed-cookie sessions
none of these hooks does I/O (the session is the cookie, the user is loaded lazily, messages live
in the cookie or that session), so `install()` has them called inline on the loop. MIDDLEWARE
keeps naming Django's own classes, so `check --deploy` and readers see what they expect; sync
views (the admin) still get their thread from Django's handler, and WSGI is unchanged."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils.deprecation import MiddlewareMixin
from whitenoise.middleware import WhiteNoiseMiddleware as _WhiteNoise

ON_LOOP = (
    SecurityMiddleware,
    SessionMiddleware,
    CommonMiddleware,
    CsrfViewMiddleware,
    AuthenticationMiddleware,
    MessageMiddleware,
    XFrameOptionsMiddleware,
)


async def _acall_inline(self: MiddlewareMixin, request: HttpRequest) -> HttpResponseBase:
    """MiddlewareMixin.__acall__ without its sync_to_async around each hook."""
    response = self.process_request(request) if hasattr(self, "process_request") else None
    if response is None:
        # Only installed as __acall__, which Django calls on middleware in async mode, whose
        # get_response is the async one.
        response = await cast(Awaitable[HttpResponseBase], self.get_response(request))
    if hasattr(self, "process_response"):
        response = self.process_response(request, response)
    return response


_csrf_init = CsrfViewMiddleware.__init__


def _csrf_init_on_loop(self: CsrfViewMiddleware, get_response: Any) -> None:
    _csrf_init(self, get_response)
    if self.async_mode:  # type: ignore[attr-defined]  # set by MiddlewareMixin; not in the stubs
        # Django's handler calls process_view itself, through sync_to_async unless it is async.
        sync_view = self.process_view

        async def process_view(request: HttpRequest, callback: Any, args: Any, kwargs: Any) -> Any:
            return sync_view(request, callback, args, kwargs)

        # An async hook where the stubs know only the sync one: the point of this patch.
        self.process_view = process_view  # type: ignore[method-assign, assignment]


def install() -> None:
    """Called once at start (JobsConfig.ready)."""
    if settings.SESSION_ENGINE != "django.contrib.sessions.backends.signed_cookies":
        # Inline is safe only while loading and saving a session does no I/O.
        raise ImproperlyConfigured("jobs.compat.onloop needs signed-cookie sessions.")
    for middleware in ON_LOOP:
        middleware.__acall__ = _acall_inline  # type: ignore[method-assign]
    # The patch is narrower than MiddlewareMixin.__init__'s declared type: only for this class.
    CsrfViewMiddleware.__init__ = _csrf_init_on_loop  # type: ignore[method-assign, assignment]


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
        path = request.path_info
        static_file = self.find_file(path) if self.autorefresh else self.files.get(path)
        if static_file is not None:
            response = self.serve(static_file, request)
            return self._answer(response) if self.async_mode else response
        return self.get_response(request)

    @staticmethod
    async def _answer(response: HttpResponseBase) -> HttpResponseBase:
        return response
