"""The base of every face's API view: adrf's async APIView with authentication and throttling
awaited on the event loop (jobs/compat/adrf_view.py), the face's error envelope, strict JSON."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponseBase
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request

from jobs import jsonbody, limits
from jobs.access import KEY_FACE, ReadGrant, key_grant
from jobs.compat.adrf_view import OnLoopAPIView
from jobs.faces.common.auth import ApiKeyAuthentication
from jobs.faces.common.errors import OPENAI, FaceError, not_allowed
from jobs.faces.common.throttling import RequestRateThrottle
from jobs.selectors import parse_uuid


def caller(request: Request) -> User:
    """The signed-in user of a view whose permission class lets only signed-in users in."""
    user = request.user
    if not isinstance(user, User):
        raise exceptions.NotAuthenticated()
    return user


def readable(request: Request, job_id: Any) -> Any:
    """The job id as the view may look it up: under a read token, only the token's job (any
    other id reads as unknown, as another user's does)."""
    return readable_by(request.auth, job_id)


def readable_by(auth: Any, job_id: Any) -> Any:
    """readable, for a caller's credentials (request.auth) without a DRF request."""
    if isinstance(auth, ReadGrant) and parse_uuid(job_id) != auth.job_id:
        return None
    return job_id


class AnyAccept(BaseContentNegotiation):
    """Every face answers in one format (JSON, or SSE for a stream, whatever the client's Accept
    says: an EventSource sends text/event-stream); a 406 would help nobody."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> Any:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> Any:
        first = next(iter(renderers))
        return first, first.media_type


@functools.cache
def authenticators(classes: tuple[type[BaseAuthentication], ...]) -> list[BaseAuthentication]:
    return [authentication() for authentication in classes]


class FaceView(OnLoopAPIView):
    # Set `face` (openai, jobs, semoss): errors are rendered in its envelope. (A comment, not a
    # docstring: drf-spectacular would put a docstring in every operation's description.)
    face = OPENAI
    authentication_classes: list[type[BaseAuthentication]] = [ApiKeyAuthentication]
    permission_classes: list[type[BasePermission]] = [IsAuthenticated]
    throttle_classes = [RequestRateThrottle]
    renderer_classes = [JSONRenderer]
    # For the schema; bodies are read by json_body (strict).
    parser_classes: list[type[BaseParser]] = [JSONParser]
    content_negotiation_class = AnyAccept
    # Message of the 400 for a body that is not JSON.
    invalid_json = "We could not parse the JSON body of your request: send a JSON object."

    @property
    def default_response_headers(self) -> dict[str, str]:
        # No Allow and Vary on every answer: a 405 names what is allowed (errors.py).
        return {}

    # A view that reads Redis before it does anything else sets this: the request's count goes
    # in that read's round trip (jobs.limits.take_deferred) instead of one of its own.
    counts_with_read = False

    async def async_dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = await super().async_dispatch(request, *args, **kwargs)
        if self.counts_with_read:
            # Answered without such a read (a malformed id, a refused form): counted now, and
            # over the limit the answer is the 429 (FaceErrorsMiddleware renders it).
            await limits.settle_deferred()
        return response

    def get_authenticators(self) -> list[BaseAuthentication]:
        # Spool's authenticators keep nothing of a request: one instance of each serves all.
        return authenticators(tuple(self.authentication_classes))

    async def ainitial(self, request: Request) -> None:
        self.format_kwarg = None
        request.accepted_renderer, request.accepted_media_type = self.perform_content_negotiation(request)
        await self.aauthenticate(request)
        self.check_permissions(request)
        grant = key_grant(request.auth)
        if grant is not None and not grant.allows_face(self.face):
            raise not_allowed(
                f"This API key may not use the {KEY_FACE.get(self.face, self.face)} API.", "face_not_allowed"
            )
        for throttle in self.get_throttles():
            if not await throttle.allow_request(request, self):
                raise exceptions.Throttled(wait=throttle.wait(), detail=throttle.exceeded.message)

    def json_body(self, request: Request) -> Any:
        """The body as strict JSON (jobs.jsonbody: no NaN, no 1e999, no stray surrogates), whatever
        its Content-Type says, as OpenAI's API reads it."""
        try:
            return jsonbody.loads(request._request.body)
        except ValueError:
            raise FaceError(self.invalid_json, code="invalid_json") from None
