"""The SEMOSS poll's fast path (jobs/faces/semoss/fastpoll.py) answers as the full path does:
each request below is sent to the web's ASGI application as served (config.asgi), once with the
fast path on and once off, and the two answers must match in status, headers and body. Each case
also says which path answered, so that a fast path that handed everything to Django (and so
matched trivially) fails."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from typing import Any

import httpx
import pytest

from jobs import chunklog, readtokens, services
from jobs.models import Job

pytestmark = pytest.mark.django_db(transaction=True)

POLL = "/Monolith/api/engine/pixelJobStreaming"
PARTIAL = "/Monolith/api/engine/partial"  # the ai-server-sdk's stream_ask polls this one
FORM = "application/x-www-form-urlencoded"


def spied(application: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the requests the fast path handed to its Django handler."""
    handed: list[str] = []
    handle = application.handler.handle

    async def spy(scope: Any, receive: Any, send: Any) -> None:
        handed.append(scope["path"])
        await handle(scope, receive, send)

    monkeypatch.setattr(application.handler, "handle", spy)
    return handed


@pytest.fixture
def app(monkeypatch):
    """The application as served, with `handed` (spied)."""
    from config.asgi import application

    application.handed = spied(application, monkeypatch)
    yield application
    del application.handed


@pytest.fixture
def caller(redis_clean, spool_env, one_limit_window):
    spool_env(SPOOL_LONG_POLL_SECONDS="0.05")
    user = services.user_ensure(username="poller")
    key, secret = services.key_create(owner=user)
    basic = base64.b64encode(f"{key.access_key}:{secret}".encode()).decode()
    return {"basic": f"Basic {basic}", "bearer": f"Bearer {secret}", "user": user, "key": key}


@pytest.fixture
def job(new_job):
    return new_job()


@pytest.fixture
def new_job(caller):
    """Makes a job live in Redis (queued, as a submit leaves it) with two chunks in its log."""
    return lambda: started_job(caller)


def started_job(caller) -> str:
    engine = services.engine_ensure_offline()
    expression = f'LLM(engine="{engine.pk}", command="<encode>hi</encode>");'
    [started] = send(
        {
            "method": "POST",
            "url": "/Monolith/api/engine/runPixelAsync",
            "data": {"expression": expression},
            "headers": {"Authorization": caller["basic"]},
        }
    )
    job_id = started.json()["jobId"]
    chunklog.append(job_id, [{"type": "content", "data": {"content": w}} for w in ("one", "two")])
    return job_id


def send(*requests: dict[str, Any], app: Any = None) -> list[httpx.Response]:
    from config.asgi import application

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app or application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return [await client.request(**request) for request in requests]

    return asyncio.run(main())


def answer(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    headers = {name: value for name, value in response.headers.items() if name not in ("date", "server")}
    return response.status_code, headers, json.loads(response.content)


def both_ways(app, spool_env, *requests: dict[str, Any]) -> tuple[Any, Any, list[str]]:
    """(the full path's answer, the fast path's, which of the fast path's went to Django). Given
    two requests, the first goes the full path and the second the fast one (a poll that changes
    what it reads, sent to two jobs alike)."""
    spool_env(SPOOL_FAST_POLL="false")
    [full] = send(requests[0], app=app)
    spool_env(SPOOL_FAST_POLL="true")
    app.handed.clear()
    [fast] = send(requests[-1], app=app)
    return answer(full), answer(fast), list(app.handed)


def poll(headers: dict[str, str], form: Any, *, as_json: bool = False, url: str = POLL) -> dict[str, Any]:
    if as_json:
        return {"method": "POST", "url": url, "json": form, "headers": headers}
    return {"method": "POST", "url": url, "data": form, "headers": headers}


def test_a_keyed_poll_is_answered_by_the_fast_path_as_by_the_full_one(app, spool_env, caller, job):
    for headers in ({"Authorization": caller["basic"]}, {"Authorization": caller["bearer"]}):
        full, fast, handed = both_ways(app, spool_env, poll(headers, {"jobId": job, "cursor": "0"}))
        assert handed == []
        assert fast == full
        status, headers_seen, body = fast
        assert status == 200 and [m["data"] for m in body["message"]] == [
            {"content": "one"},
            {"content": "two"},
        ]
        assert body["cursor"] == 2
        assert headers_seen["x-frame-options"] == "DENY" and headers_seen["vary"] == "origin"
        assert int(headers_seen["content-length"]) > 0


@pytest.mark.parametrize(
    "form",
    [
        {"jobId": "not-a-uuid"},
        {"jobId": "00000000-0000-4000-8000-000000000000", "cursor": "0"},
        {"jobId": "JOB", "cursor": "-1"},
        {"jobId": "JOB", "cursor": "5"},  # nothing past the log's end: waits, then answers empty
    ],
)
def test_unknown_jobs_bad_cursors_and_empty_pages_match(app, spool_env, caller, job, form):
    form = {name: job if value == "JOB" else value for name, value in form.items()}
    full, fast, handed = both_ways(app, spool_env, poll({"Authorization": caller["basic"]}, form))
    assert handed == [] and fast == full


def test_a_json_body_matches(app, spool_env, caller, job):
    request = poll({"Authorization": caller["basic"]}, {"jobId": job, "cursor": 1}, as_json=True)
    full, fast, handed = both_ways(app, spool_env, request)
    assert handed == [] and fast == full and fast[0] == 200


def test_a_read_token_reads_its_job_only(app, spool_env, caller, job):
    token, _ = readtokens.mint(key_id=caller["key"].pk, job_id=uuid.UUID(job), seconds=60)
    for form in ({"jobId": job, "cursor": "0"}, {"jobId": "00000000-0000-4000-8000-000000000000"}):
        full, fast, handed = both_ways(app, spool_env, poll({}, form, url=f"{POLL}?token={token}"))
        assert handed == [] and fast == full
    assert fast[2]["status"] == "UnknownJob"


def test_a_login_session_polls_on_the_fast_path(app, spool_env, caller, job):
    [login] = send(
        {"method": "GET", "url": "/Monolith/api/config", "headers": {"Authorization": caller["basic"]}}
    )
    cookie = {"Cookie": f"sessionid={login.cookies['sessionid']}"}
    # The first request of a session in a process reads the session (Django's middleware then
    # adds Vary: Cookie); later ones find its user in the process's cache: compared warm.
    send(poll(cookie, {"jobId": job, "cursor": "0"}), app=app)
    full, fast, handed = both_ways(app, spool_env, poll(cookie, {"jobId": job, "cursor": "0"}))
    assert handed == [] and fast == full and fast[0] == 200


def test_cors_headers_match_for_allowed_and_other_origins(app, spool_env, caller, job, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example"]
    for origin in ("https://app.example", "https://elsewhere.example"):
        headers = {"Authorization": caller["basic"], "Origin": origin}
        full, fast, handed = both_ways(app, spool_env, poll(headers, {"jobId": job, "cursor": "0"}))
        assert handed == [] and fast == full
    assert "access-control-allow-origin" not in fast[1]


def test_a_poll_over_the_request_limit_gets_the_same_429(app, spool_env, caller, job):
    spool_env(SPOOL_REQUESTS_PER_MINUTE="1")
    request = poll({"Authorization": caller["basic"]}, {"jobId": job, "cursor": "0"})
    send(request)  # the minute's one request
    full, fast, handed = both_ways(app, spool_env, request)
    assert handed == [] and fast == full
    assert fast[0] == 429 and fast[2]["status"] == "Unavailable" and "retry-after" in fast[1]


@pytest.mark.parametrize("case", ["no credentials", "wrong key", "key of another face", "text body"])
def test_what_the_fast_path_does_not_take_django_answers(app, spool_env, caller, job, case):
    request = poll({"Authorization": caller["basic"]}, {"jobId": job, "cursor": "0"})
    if case == "no credentials":
        request["headers"] = {}
    elif case == "wrong key":
        request["headers"] = {"Authorization": "Bearer sk-wrong"}
    elif case == "key of another face":
        _, secret = services.key_create(owner=caller["user"], faces=["openai"])
        request["headers"] = {"Authorization": f"Bearer {secret}"}
    else:
        request = {"method": "POST", "url": POLL, "content": b"jobId=x", "headers": request["headers"]}
        request["headers"]["Content-Type"] = "text/plain"
    full, fast, handed = both_ways(app, spool_env, request)
    assert handed == [POLL] and fast == full
    assert fast[0] == {"no credentials": 401, "wrong key": 401, "key of another face": 403}.get(case, 415)


def test_a_csrf_cookie_django_may_renew_goes_to_django(app, spool_env, caller, job):
    headers = {"Authorization": caller["basic"], "Cookie": "csrftoken=short"}
    full, fast, handed = both_ways(app, spool_env, poll(headers, {"jobId": job, "cursor": "0"}))
    # Both renew the cookie, each with a new value: the headers' names are compared.
    assert handed == [POLL] and fast[0] == full[0] == 200 and fast[1].keys() == full[1].keys()
    assert "set-cookie" in fast[1]


def test_an_https_redirect_is_djangos(caller, job, settings, monkeypatch):
    from jobs.compat.asgi_handler import Handler
    from jobs.faces.semoss.fastpoll import PollFastPath

    settings.SECURE_SSL_REDIRECT = True  # read as the middleware is built, as at start-up
    app = PollFastPath(Handler())
    handed = spied(app, monkeypatch)
    [redirected] = send(poll({"Authorization": caller["basic"]}, {"jobId": job, "cursor": "0"}), app=app)
    assert redirected.status_code == 301 and redirected.headers["location"].startswith("https://")
    assert handed == [POLL]


def test_a_stateful_poll_hands_each_chunk_out_once(app, spool_env, caller, job):
    headers = {"Authorization": caller["basic"]}
    app.handed.clear()
    first, second = send(poll(headers, {"jobId": job}), poll(headers, {"jobId": job}), app=app)
    assert [m["data"]["content"] for m in first.json()["message"]] == ["one", "two"]
    assert second.json()["message"] == [] and app.handed == []


def test_a_finished_job_is_read_from_postgres_on_the_fast_path(app, spool_env, caller, job):
    chunklog.append(job, [{"type": "finish", "data": {"finish_reason": "stop"}, "choice": 0}])
    Job.objects.filter(pk=job).update(status=Job.Status.SUCCEEDED)
    full, fast, handed = both_ways(
        app, spool_env, poll({"Authorization": caller["basic"]}, {"jobId": job, "cursor": "0"})
    )
    assert handed == [] and fast == full and fast[0] == 200


def test_a_poll_whose_client_went_away_hands_nothing_out(app, spool_env, caller, job):
    headers = {"Authorization": caller["basic"]}
    send(poll(headers, {"jobId": job}))  # hands out "one" and "two": the next poll waits
    spool_env(SPOOL_LONG_POLL_SECONDS="5")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": POLL, "raw_path": POLL.encode(), "query_string": b"",
        "root_path": "", "server": ("testserver", 80), "client": ("127.0.0.1", 5000),
        "headers": [(b"host", b"testserver"), (b"content-type", FORM.encode()),
                    (b"authorization", caller["basic"].encode())],
    }  # fmt: skip

    async def went_away() -> list[dict[str, Any]]:
        gone, sent = asyncio.Event(), []
        body = [{"type": "http.request", "body": f"jobId={job}".encode(), "more_body": False}]

        async def receive() -> dict[str, Any]:
            if body:
                return body.pop()
            await gone.wait()
            return {"type": "http.disconnect"}

        async def answer(message: dict[str, Any]) -> None:
            sent.append(message)

        serving = asyncio.ensure_future(app(scope, receive, answer))
        await asyncio.sleep(0.2)  # the poll waits for a chunk (if it is not there yet, no matter)
        gone.set()
        await serving
        return sent

    app.handed.clear()
    assert asyncio.run(went_away()) == [] and app.handed == []  # cancelled: no answer, no claim
    chunklog.append(job, [{"type": "content", "data": {"content": "three"}}])
    [next_poll] = send(poll(headers, {"jobId": job}))
    assert [m["data"]["content"] for m in next_poll.json()["message"]] == ["three"]


def test_polls_that_read_no_job_are_counted_on_the_fast_path_too(app, spool_env, caller):
    spool_env(SPOOL_REQUESTS_PER_MINUTE="2")
    request = poll({"Authorization": caller["basic"]}, {"jobId": "not-a-uuid"})
    app.handed.clear()
    answers = send(request, request, request, app=app)
    assert [a.status_code for a in answers] == [200, 200, 429] and app.handed == []
    assert answers[0].json()["status"] == "UnknownJob" and answers[2].json()["status"] == "Unavailable"


def test_postgres_away_while_a_key_is_looked_up_gets_the_same_503(app, spool_env, caller, job, monkeypatch):
    from django.db import OperationalError

    from jobs.faces.common import auth

    @auth.db_work
    def unreachable(where: Any, secret: Any) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(auth, "_lookup", unreachable)
    auth.cache.clear()
    full, fast, handed = both_ways(app, spool_env, poll({"Authorization": caller["basic"]}, {"jobId": job}))
    assert handed == [] and fast == full
    assert fast[0] == 503 and fast[2]["status"] == "Unavailable" and "database" in fast[2]["errorMessage"]


def test_the_served_middleware_is_the_one_the_fast_path_follows(settings, caller, job, monkeypatch):
    """Else the fast path is off (every test above would still pass, through Django): a new
    middleware in config/settings.py must be looked at in jobs/faces/semoss/fastpoll.py."""
    from config.asgi import application
    from jobs.compat.asgi_handler import Handler
    from jobs.faces.semoss.fastpoll import PollFastPath

    assert application.follows_middleware
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]
    other = PollFastPath(Handler())
    handed = spied(other, monkeypatch)
    assert not other.follows_middleware
    [answer] = send(poll({"Authorization": caller["basic"]}, {"jobId": job, "cursor": "0"}), app=other)
    assert answer.status_code == 200 and handed == [POLL]  # Django's chain, with the new middleware


def partial_poll(headers: dict[str, str], job_id: str) -> dict[str, Any]:
    return poll(headers, {"jobId": job_id}, url=PARTIAL)


def test_the_sdks_partial_poll_is_answered_by_the_fast_path_as_by_the_full_one(
    app, spool_env, caller, new_job
):
    for headers in ({"Authorization": caller["basic"]}, {"Authorization": caller["bearer"]}):
        jobs = new_job(), new_job()  # a partial poll claims the text it answers: one job each way
        full, fast, handed = both_ways(app, spool_env, *(partial_poll(headers, job) for job in jobs))
        assert handed == [] and fast == full
        status, headers_seen, body = fast
        assert status == 200 and body["message"] == {"new": "onetwo", "total": "onetwo"}
        assert headers_seen["x-frame-options"] == "DENY" and headers_seen["vary"] == "origin"
        # The next poll of each finds nothing new (after its wait), and says so alike.
        full, fast, handed = both_ways(app, spool_env, *(partial_poll(headers, job) for job in jobs))
        assert handed == [] and fast == full and fast[2]["message"] == {"new": "", "total": "onetwo"}


@pytest.mark.parametrize(
    "case", ["unknown job", "finished job", "over the limit", "read token of another job"]
)
def test_partial_polls_of_unknown_finished_limited_and_tokened_jobs_match(
    app, spool_env, caller, new_job, case
):
    jobs = new_job(), new_job()
    headers = {"Authorization": caller["basic"]}
    requests = [partial_poll(headers, job) for job in jobs]
    if case == "unknown job":
        requests = [partial_poll(headers, "00000000-0000-4000-8000-000000000000")] * 2
    elif case == "finished job":
        for job in jobs:
            chunklog.append(job, [{"type": "finish", "data": {"finish_reason": "stop"}, "choice": 0}])
        Job.objects.filter(pk__in=jobs).update(status=Job.Status.SUCCEEDED)
    elif case == "over the limit":
        spool_env(SPOOL_REQUESTS_PER_MINUTE="1")
        send(requests[0])  # the minute's one request
    else:
        other = new_job()
        token, _ = readtokens.mint(key_id=caller["key"].pk, job_id=uuid.UUID(other), seconds=60)
        requests = [{**partial_poll({}, job), "url": f"{PARTIAL}?token={token}"} for job in jobs]
    full, fast, handed = both_ways(app, spool_env, *requests)
    assert handed == [] and fast == full
    expected = {
        "unknown job": "UnknownJob",
        "finished job": "ProgressComplete",
        "over the limit": "Unavailable",
    }
    assert fast[2]["status"] == expected.get(case, "UnknownJob")


def test_a_partial_poll_the_fast_path_does_not_take_django_answers(app, spool_env, caller, job):
    full, fast, handed = both_ways(app, spool_env, partial_poll({}, job))
    assert handed == [PARTIAL] and fast == full and fast[0] == 401
