"""pixelJobStreaming and partial, the SEMOSS polls, answered without Django's middleware chain,
its URL resolver and DRF's dispatch: a fifth to a third of an idle poll's web CPU, and ~50
objects a poll left in reference cycles for the collector (docs/PERFORMANCE.md, "Issue 29 (8)").

The same code decides as on the full path: the view's own function (views.job_streaming,
views.job_partial), the job readers' authenticators and throttle, the face's key check, the
error renderer, and the process_response of each middleware that touches such an answer (CORS,
security headers, the frame policy, Content-Length, the session). What is taken here is the
common case only: a POST to one of the exact paths by a caller those authenticators accept.
Anything else (no or wrong credentials, a key not allowed on this face, a body that is not a
form or JSON, a redirect Django would make, a CSRF cookie Django may renew, traces being
exported) is handed to Django whole, body included, before anything is counted or read: it
answers as it always did.
tests/jobs/test_fastpoll.py checks each answer against the full path's, headers included.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from asgiref.sync import ThreadSensitiveContext
from corsheaders.middleware import CorsMiddleware
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.core import signals
from django.core.handlers.asgi import get_script_prefix
from django.core.handlers.exception import response_for_exception
from django.http import HttpRequest, HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import set_script_prefix
from rest_framework.exceptions import APIException

from jobs import limits, logcontext, tracing
from jobs.access import key_grant
from jobs.compat.asgi_handler import Handler, close_response
from jobs.dbwork import track_connections
from jobs.faces.common.errors import error_response
from jobs.faces.common.middleware import nul_in_query
from jobs.faces.common.views import authenticators
from jobs.faces.semoss.views import Partial, PixelJobStreaming, job_partial, job_streaming, semoss_form

log = logging.getLogger(__name__)

Answer = Callable[[dict[str, Any], int, Any], Awaitable[HttpResponse]]

# The polls this path answers: each view, whose authenticators, throttle and face it follows,
# and the function that answers for that view. A frontend polls pixelJobStreaming; the
# ai-server-sdk's stream_ask polls partial.
ANSWERED = {
    "/Monolith/api/engine/pixelJobStreaming": (PixelJobStreaming, job_streaming),
    "/Monolith/api/engine/partial": (Partial, job_partial),
}
# A poll's form is a job id and a cursor; a larger body is surely not one, and Django's own
# limits (DATA_UPLOAD_MAX_MEMORY_SIZE) answer it.
MAX_BODY = 64 * 1024

# The MIDDLEWARE this path stands in for (config/settings.py). A deployment whose settings list
# others gets the full path for every poll: what this path would leave out is not known here.
MIDDLEWARE_FOLLOWED = (
    "jobs.logcontext.job_log_middleware",
    "corsheaders.middleware.CorsMiddleware",
    "jobs.faces.common.middleware.FaceErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "jobs.compat.onloop.WhiteNoiseMiddleware",  # static files only: not this path
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",  # DRF's views are exempt; its cookie: see _prepare
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "jobs.faces.common.page_messages.PageMessageMiddleware",  # pages only: not this path
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]


@dataclass(slots=True)
class _Caller:
    """What the authenticators and the throttle read of DRF's Request: the Django request and,
    once authenticated, who."""

    _request: HttpRequest
    user: Any = None
    auth: Any = None


def _replayed(body: bytes, complete: bool, receive: Receive) -> Receive:
    """`receive` for Django: the body this path already read, then whatever is left of it."""
    pending = True

    async def again() -> dict[str, Any]:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": not complete}
        return await receive()

    return again


def _no_response(request: HttpRequest) -> HttpResponse:
    raise AssertionError("only the middleware's process_request and process_response are called")


class PollFastPath:
    """The ASGI application: the poll's fast path in front of Spool's Django handler."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.routes = {path: _Route.of(view, answer) for path, (view, answer) in ANSWERED.items()}
        # Django's middleware, as objects whose process_request and process_response this path
        # calls in the order MIDDLEWARE lists them (responses innermost first).
        self.cors = CorsMiddleware(_no_response)
        self.security = SecurityMiddleware(_no_response)
        self.sessions = SessionMiddleware(_no_response)
        self.common = CommonMiddleware(_no_response)
        self.authentication = AuthenticationMiddleware(_no_response)
        self.frames = XFrameOptionsMiddleware(_no_response)
        self.follows_middleware = tuple(settings.MIDDLEWARE) == MIDDLEWARE_FOLLOWED
        if not self.follows_middleware:
            log.warning(
                "MIDDLEWARE is not the one the SEMOSS poll's fast path follows: all polls take the full path"
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] not in self.routes
            or scope["method"] != "POST"
            or not settings.SPOOL.web.fast_poll
            or not self.follows_middleware
            or tracing.enabled()  # Django's instrumentation makes each request's span
        ):
            await self.handler(scope, receive, send)
            return
        async with ThreadSensitiveContext():
            await self._serve(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, complete = await _read_body(receive)
        if body is None:
            return  # the client went away
        track_connections()  # a key's lookup below runs on the kept threads (jobs/dbwork.py)
        route = self.routes[scope["path"]]
        poll = await self._prepare(scope, body, route) if complete else None
        if poll is None:
            await self.handler.handle(scope, _replayed(body, complete, receive), send)
            return
        set_script_prefix(get_script_prefix(scope))
        await signals.request_started.asend(sender=self.handler.__class__, scope=scope)
        # As Django's handler does: a client that goes away cancels the poll before it claims
        # chunks it would never receive.
        answer = asyncio.ensure_future(self._answer(poll, send))
        gone = asyncio.ensure_future(_disconnected(receive))
        await asyncio.wait((answer, gone), return_when=asyncio.FIRST_COMPLETED)
        gone.cancel()
        answer.cancel()  # nothing, if it is done
        try:
            response = await answer
        except asyncio.CancelledError:
            await signals.request_finished.asend(sender=self.handler.__class__)
            return
        await close_response(response)

    async def _prepare(self, scope: Scope, body: bytes, route: _Route) -> _Poll | None:
        """The poll, if this path may answer it; None hands it to Django. Reads nothing but the
        process's caches of keys and sessions, and counts nothing."""
        request, refused = self.handler.create_request(scope, io.BytesIO(body))
        if request is None or refused is not None or nul_in_query(request):
            return None
        if settings.CSRF_COOKIE_NAME in request.COOKIES:
            return None  # Django's CSRF middleware may renew that cookie in the answer
        try:
            if self.security.process_request(request) or self.common.process_request(request):
                return None  # a redirect (HTTPS, a slash)
            form = semoss_form(request)
        except Exception:  # a disallowed host, a form Django refuses: Django's answer
            return None
        session = self._open_session(request)
        caller = _Caller(request)
        try:
            if not await self._admitted(caller, route):
                return None
        except APIException:
            return None  # refused credentials: Django's 401
        except Exception as exc:
            # Postgres or Redis away while a key was looked up: the same 503 as Django's
            # FaceErrorsMiddleware would answer, without asking them a second time.
            refused = error_response(request, exc)
            if refused is None:
                raise
            return _Poll(route, request, form, caller, session, refused)
        return _Poll(route, request, form, caller, session)

    async def _admitted(self, caller: _Caller, route: _Route) -> bool:
        """Authenticates the caller and leaves its request's count as FaceView.ainitial does;
        False for what Django answers (no credentials, a key not allowed on this face)."""
        for authenticator in route.authenticators:
            found = await authenticator.authenticate(caller)
            if found is not None:
                caller.user, caller.auth = found
                break
        if caller.user is None:
            return False
        grant = key_grant(caller.auth)
        if grant is not None and not grant.allows_face(route.view.face):
            return False
        for throttle in route.view.throttle_classes:
            # The job readers count a request in their first read of Redis (limits.defer):
            # this only leaves the count for it.
            if not await throttle().allow_request(caller, route.view):
                return False
        return True

    def _open_session(self, request: HttpRequest) -> bool:
        """Gives the request the session and its user as their middleware would, when a session
        cookie is its only credential (the ai-server-sdk after its login)."""
        if settings.SESSION_COOKIE_NAME not in request.COOKIES or "HTTP_AUTHORIZATION" in request.META:
            return False
        self.sessions.process_request(request)
        self.authentication.process_request(request)
        return True

    async def _answer(self, poll: _Poll, send: Send) -> HttpResponse:
        request = poll.request
        response: HttpResponse
        logcontext.open_scope()
        try:
            if poll.refused is not None:
                response = poll.refused
            else:
                response = await poll.route.answer(poll.form, poll.caller.user.pk, poll.caller.auth)
                await limits.settle_deferred()  # FaceView.async_dispatch's (see there)
        except Exception as exc:
            response = error_response(request, exc) or response_for_exception(request, exc)
        finally:
            logcontext.close_scope()
        response = self._finish(request, response, poll.session)
        await self.handler.send_response(response, send)
        return response

    def _finish(self, request: HttpRequest, response: HttpResponse, session: bool) -> HttpResponse:
        """MIDDLEWARE's process_response, innermost first (the session's only if it ran); each
        sets its headers on the response itself."""
        self.frames.process_response(request, response)
        self.common.process_response(request, response)
        if session:
            self.sessions.process_response(request, response)
        self.security.process_response(request, response)
        self.cors.add_response_headers(request, response)
        return response


@dataclass(frozen=True, slots=True)
class _Route:
    view: Any  # a JobReader view class
    answer: Answer
    # Spool's authenticators are async and read only what _Caller has.
    authenticators: list[Any]

    @classmethod
    def of(cls, view: Any, answer: Answer) -> _Route:
        return cls(view, answer, authenticators(tuple(view.authentication_classes)))


@dataclass(slots=True)
class _Poll:
    route: _Route
    request: HttpRequest
    form: dict[str, Any]
    caller: _Caller
    session: bool
    refused: HttpResponse | None = None  # the answer already, when the caller's lookup failed


async def _read_body(receive: Receive) -> tuple[bytes | None, bool]:
    """The request's body, and whether that is all of it: reading stops past MAX_BODY (such a
    body is Django's to read, and refuse). None if the client disconnected first."""
    parts, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None, False
        part = message.get("body", b"")
        parts.append(part)
        size += len(part)
        if not message.get("more_body", False):
            return b"".join(parts), True
        if size > MAX_BODY:
            return b"".join(parts), False


async def _disconnected(receive: Receive) -> None:
    """Returns when the client disconnects (the body is read: nothing else may come)."""
    while (await receive())["type"] != "http.disconnect":
        pass
