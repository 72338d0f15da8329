"""Spool's ASGI handler (jobs/compat/asgi_handler.py; its guard is in tests/test_compat.py): a
request that ran no sync code, or whose sync code gave its database connection back, has its
response closed on the event loop, without a thread hop; one whose thread still holds a
connection closes on that thread, where the connection is."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connections, reset_queries
from django.http import HttpRequest, HttpResponse
from django.urls import path

from jobs.dbwork import db_work

answers: list[str] = []


def serve(
    path: str, monkeypatch: pytest.MonkeyPatch, *, connect_first: bool = False
) -> tuple[int, list[int], int, int]:
    """(status, threads request_finished ran on, threads started meanwhile, the loop's thread);
    the answer's body is in `answers`.
    The loop runs on a thread of its own, as the web's does: no database connection in it
    unless `connect_first` opens one there first (what Playwright's loop leaves in a test's
    main thread)."""
    finished_on: list[int] = []
    started: list[threading.Thread] = []
    start = threading.Thread.start
    outcome: dict[str, int] = {}

    def counted_start(thread: threading.Thread) -> None:
        started.append(thread)
        start(thread)

    def note(**_: Any) -> None:
        finished_on.append(threading.get_ident())

    async def main() -> int:
        from config.asgi import application  # the handler as served, with its signal setup

        if connect_first:
            monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
            connections["default"].ensure_connection()
            monkeypatch.delenv("DJANGO_ALLOW_ASYNC_UNSAFE")
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get(path)
            answers.append(response.text)
            return response.status_code

    def run() -> None:
        outcome["loop_thread"] = threading.get_ident()
        outcome["status"] = asyncio.run(main())
        if connect_first:
            connections.close_all()

    # As config/asgi.py leaves them when it is served; Django's test client connects these two
    # again after each of its requests, so an earlier test may have.
    for receiver in (close_old_connections, reset_queries):
        request_started.disconnect(receiver)
    request_finished.connect(note, dispatch_uid="test_asgi_handler")
    runner = threading.Thread(target=run)
    start(runner)  # not counted
    monkeypatch.setattr(threading.Thread, "start", counted_start)
    try:
        runner.join()
    finally:
        request_finished.disconnect(dispatch_uid="test_asgi_handler")
    return outcome["status"], finished_on, len(started), outcome["loop_thread"]


def test_a_request_that_ran_no_sync_code_is_closed_on_the_loop_without_a_thread(monkeypatch):
    status, finished_on, threads_started, loop_thread = serve("/healthz", monkeypatch)
    assert status == 200
    assert finished_on == [loop_thread]
    assert threads_started == 0


def _queries(request: HttpRequest) -> HttpResponse:
    # A sync view: its thread takes a connection and keeps it until the request ends.
    return HttpResponse(str(User.objects.count()))


def _count_where() -> str:
    User.objects.count()
    return str(threading.get_ident())


async def _gives_back(request: HttpRequest) -> HttpResponse:
    # Answers the thread the work ran on.
    return HttpResponse(await db_work(_count_where)())


async def _holds_and_gives_back(request: HttpRequest) -> HttpResponse:
    # The async ORM call leaves a connection on the request's own thread; db_work gives back
    # only its own.
    await User.objects.acount()
    return HttpResponse(await db_work(_count_where)())


urlpatterns = [
    path("queries", _queries),
    path("gives-back", _gives_back),
    path("holds-and-gives-back", _holds_and_gives_back),
    path("admin/", admin.site.urls),
]


@pytest.mark.django_db(transaction=True)
def test_a_sync_view_that_holds_a_connection_is_closed_on_its_own_thread(monkeypatch, settings):
    settings.ROOT_URLCONF = __name__
    status, finished_on, threads_started, loop_thread = serve("/queries", monkeypatch)
    assert status == 200
    assert len(finished_on) == 1 and finished_on[0] != loop_thread
    assert threads_started >= 1


@pytest.mark.django_db(transaction=True)
def test_a_request_whose_sync_code_gave_its_connection_back_is_closed_on_the_loop(monkeypatch, settings):
    settings.ROOT_URLCONF = __name__
    status, finished_on, _, loop_thread = serve("/gives-back", monkeypatch)
    assert status == 200
    assert finished_on == [loop_thread]
    assert int(answers[-1]) != loop_thread  # the work ran on a thread
    # A sync view that took no connection.
    status, finished_on, threads_started, loop_thread = serve("/admin/login/", monkeypatch)
    assert status == 200
    assert finished_on == [loop_thread]
    assert threads_started >= 1  # its sync code ran on a thread of its own


@pytest.mark.django_db(transaction=True)
def test_db_work_runs_on_threads_kept_between_requests(monkeypatch, settings):
    settings.ROOT_URLCONF = __name__
    serve("/gives-back", monkeypatch)
    status, finished_on, threads_started, loop_thread = serve("/gives-back", monkeypatch)
    assert status == 200
    assert threads_started == 0
    assert finished_on == [loop_thread]


@pytest.mark.django_db(transaction=True)
def test_db_work_giving_its_connection_back_leaves_the_requests_own_to_close_on_its_thread(
    monkeypatch, settings
):
    settings.ROOT_URLCONF = __name__
    status, finished_on, _, loop_thread = serve("/holds-and-gives-back", monkeypatch)
    assert status == 200
    assert len(finished_on) == 1 and finished_on[0] != loop_thread


@pytest.mark.django_db(transaction=True)
def test_a_loop_thread_holding_a_connection_still_closes_on_a_thread(monkeypatch):
    status, finished_on, _, loop_thread = serve("/healthz", monkeypatch, connect_first=True)
    assert status == 200
    assert len(finished_on) == 1 and finished_on[0] != loop_thread
