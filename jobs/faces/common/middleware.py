"""FaceErrorsMiddleware: what goes wrong around any view (an outage, a limit, a body too large,
a NUL in the query string) answered in the calling face's own shape, never as a 500, by the same
renderer as views' errors (jobs/faces/common/errors.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

from jobs.faces.common.errors import HANDLED, OUTAGES, UNAVAILABLE, FaceError, error_response, render

API_PREFIXES = ("/Monolith/", "/v1/")


def nul_in_query(request: HttpRequest) -> bool:
    """A %00 in an API query string: Postgres text cannot hold NUL, so a filter with one matches
    nothing, and querying with it would raise. (Ids in paths are each view's: unknown, 404.)"""
    return request.path.startswith(API_PREFIXES) and "%00" in request.META.get("QUERY_STRING", "")


def _nul_response(request: HttpRequest) -> HttpResponse:
    message = "The query string holds a NUL character (%00), which no parameter value can contain."
    return render(request, FaceError(message, code="invalid_value", body=UNAVAILABLE))


class FaceErrorsMiddleware:
    async_capable = True
    sync_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse | None] | None:
        if iscoroutinefunction(self.get_response):  # as marked in __init__
            return self._acall(request)
        if nul_in_query(request):
            return _nul_response(request)
        try:
            return self.get_response(request)
        except (FaceError, *HANDLED, *OUTAGES) as exc:
            return error_response(request, exc)

    async def _acall(self, request: HttpRequest) -> HttpResponse | None:
        if nul_in_query(request):
            return _nul_response(request)
        try:
            return await self.get_response(request)
        except (FaceError, *HANDLED, *OUTAGES) as exc:
            return error_response(request, exc)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        # Views' exceptions arrive here (Django turns them into responses before __call__
        # would see them); middleware below this one raise into __call__.
        return error_response(request, exception)
