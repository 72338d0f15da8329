"""Issue 3 end to end, continued: how upstream faults end a job, and engines as data (GetModelAPI,
the spool_engine and spool_bootstrap commands, the admin). Same fake upstream scheme as
test_engines_semoss.py, whose fixtures this module uses."""

# ruff: noqa: F811  (fixtures imported from test_engines_semoss are named as test arguments)

from __future__ import annotations

import io
import json
import re
import secrets

import httpx
import pytest
from django.core.management import call_command

from fakeupstream import scenarios
from tests.e2e.helpers import llm_pixel, messages_of, text_of
from tests.e2e.test_engines_semoss import API_KEY, alice, new_key, run, sdk, upstream  # noqa: F401
from tests.support import NO_DEPLOYMENTS

pytestmark = pytest.mark.e2e


def words(count: int) -> str:
    """The first `count` words the fake's `fake` scenario streams."""
    return " ".join(scenarios.WORDS[:count])


# -- faults before the first chunk: retried --------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "attempts"),
    [("fail=429&retry_after=1&fail_times=1", 2), ("fail=500&fail_times=2", 3), ("fail=503&fail_times=1", 2)],
    ids=["429-retry-after", "500-twice", "503-once"],
)
def test_a_rate_limit_or_server_error_before_the_first_chunk_is_retried_and_the_job_succeeds(
    spool, upstream, sdk, fault, attempts
):
    key = new_key()
    model = sdk(upstream.engine("up-retry", f"fake?tokens=3&{fault}&key={key}"))
    out = model.ask(command="try again", param_dict={"max_completion_tokens": 10})
    assert out["messageType"] == "CHAT" and out["response"] == words(3)
    status = fault.split("&")[0].removeprefix("fail=")
    assert [r["status"] for r in upstream.requests(key)] == [f"failed {status}"] * (attempts - 1) + ["done"]


@pytest.mark.parametrize(
    ("fault", "config", "attempts", "message"),
    [
        ("fail=503", {"max_retries": 2}, 3, "upstream failed after 3 attempts: upstream answered 503"),
        # Retry-After past the engine's total wait bound: it gives up instead of waiting.
        ("fail=429&retry_after=120", {}, 1, "upstream failed after 1 attempt: upstream answered 429"),
        ("fail=400&message=bad+tools", {}, 1, "upstream answered 400: bad tools"),
    ],
    ids=["retries-exhausted", "retry-after-too-long", "client-error-not-retried"],
)
def test_a_failure_that_retries_cannot_cure_ends_the_job_with_an_error(
    spool, upstream, alice, pg, fault, config, attempts, message
):
    from jobs.models import Job

    key = new_key()
    engine_id = upstream.engine("up-failing", f"fake?{fault}&key={key}", **config)
    job_id, messages, polls = run(alice, engine_id, "doomed")
    assert messages[-1]["data"]["finish_reason"] == "error"
    assert message in messages[-1]["data"]["error"]
    assert polls[-1]["status"] == "Error"
    assert len(upstream.requests(key)) == attempts
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.finish_reason) == (Job.Status.FAILED, "upstream_error")
    result = alice.post("/engine/result", jobId=job_id)["pixelReturn"][0]
    assert result["operationType"] == ["ERROR"] and message in result["output"]


def test_a_wrong_api_key_is_not_retried_and_the_error_says_so(spool, upstream, alice):
    key = new_key()
    engine_id = upstream.engine("up-wrong-key", f"fake?key={key}", secret="sk-wrong")
    _, messages, polls = run(alice, engine_id, "let me in")
    assert "upstream answered 401: Incorrect API key provided." in messages[-1]["data"]["error"]
    assert polls[-1]["status"] == "Error"
    assert [r["status"] for r in upstream.requests(key)] == ["failed 401"]


# -- faults after the first chunk: an error ending, partial output kept ----------------------


@pytest.mark.parametrize(
    ("fault", "kept", "message"),
    [
        ("drop_after=5", 4, "upstream connection lost mid-stream"),
        ("error_after=5&message=overloaded", 4, "upstream error: overloaded"),
        ("bad_json_after=5", 4, "upstream sent malformed JSON"),
        ("no_finish=1", 20, "upstream stream ended without finish_reason"),
    ],
    ids=["dropped", "error-event", "malformed-event", "no-finish"],
)
def test_a_failure_mid_stream_ends_with_an_error_and_keeps_the_partial_output(
    spool, upstream, alice, pg, fault, kept, message
):
    from jobs.models import Job

    key = new_key()
    engine_id = upstream.engine("up-mid-stream", f"fake?tokens=20&{fault}&key={key}")
    job_id, messages, polls = run(alice, engine_id, "keep what you can")
    assert messages[-1]["stream_type"] == "content"
    assert messages[-1]["data"]["finish_reason"] == "error"
    assert message in messages[-1]["data"]["error"]
    assert polls[-1]["status"] == "Error"
    assert text_of(messages) == words(kept)
    assert len(upstream.requests(key)) == 1, "output already streamed: never retried"
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.finish_reason) == (Job.Status.FAILED, "upstream_error")
    assert job.result["choices"][0]["content"] == text_of(messages)
    assert alice.post("/engine/status", jobId=job_id)["status"] == "Error"


def test_an_upstream_that_stalls_past_the_read_timeout_ends_the_job_instead_of_hanging(
    spool, upstream, alice, pg
):
    from jobs.models import Job

    key = new_key()
    # The fake goes silent for 30 s after three events; the engine allows 0.5 s of silence.
    engine_id = upstream.engine("up-stall", f"fake?tokens=20&stall_after=3&key={key}", read_timeout=0.5)
    job_id = alice.submit(engine_id, "and then nothing")
    polls = alice.stream(job_id, timeout=20)  # raises if no ending arrives well before the stall ends
    messages = messages_of(polls)
    assert messages[-1]["data"]["finish_reason"] == "error"
    assert "read timeout" in messages[-1]["data"]["error"]
    assert polls[-1]["status"] == "Error"
    assert text_of(messages) == words(2)
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.finish_reason) == (Job.Status.FAILED, "upstream_timeout")
    assert job.result["choices"][0]["content"] == words(2)
    assert len(upstream.requests(key)) == 1


# -- engines as data ---------------------------------------------------------------------------


def test_get_model_api_answers_per_engine_kind(spool, upstream, sdk):
    assert sdk(upstream.engine("up-kind", "fake")).get_model_type() == "OPEN_AI"
    assert sdk(spool.engine_id).get_model_type() == "SPOOL_OFFLINE"


def test_an_engine_added_by_the_management_command_serves_jobs_until_disabled(spool, upstream, alice, pg):
    key = new_key()
    out = io.StringIO()
    call_command(
        "spool_engine", "add", "cmd-upstream", "--base-url", upstream.base_url,
        "--model", f"fake?tokens=3&key={key}", "--api-key", API_KEY, "--header", "X-Team=spool-e2e",
        stdout=out,
    )  # fmt: skip
    engine_id = re.fullmatch(r"engine_id=(\S+)\n", out.getvalue()).group(1)
    listing = io.StringIO()
    call_command("spool_engine", "list", stdout=listing)
    assert f"{engine_id}  openai    cmd-upstream\n" in listing.getvalue()
    assert API_KEY not in listing.getvalue()

    _, messages, _ = run(alice, engine_id, "hello")
    assert text_of(messages) == words(3)
    headers = upstream.request(key)["headers"]
    assert headers["authorization"] == f"Bearer {API_KEY}" and headers["x-team"] == "spool-e2e"

    call_command("spool_engine", "disable", "cmd-upstream", stdout=io.StringIO())
    body = alice.post("/engine/runPixelAsync", expression=llm_pixel(engine_id, "hello"), insightId="new")
    assert body["jobId"] is None and "Unknown engine" in body["errorMessage"]


def test_the_bootstrap_registers_an_upstream_engine_from_the_environment(
    spool, upstream, alice, pg, spool_env, tmp_path
):
    key = new_key()
    spool_env(
        SPOOL_UPSTREAM_BASE_URL=upstream.base_url,
        SPOOL_UPSTREAM_MODEL=f"text-tools?key={key}",
        SPOOL_UPSTREAM_API_KEY=API_KEY,
        SPOOL_UPSTREAM_NAME="env-upstream",
        SPOOL_UPSTREAM_TEXT_TOOLS="1",
    )
    out = io.StringIO()
    call_command("spool_bootstrap", "--json", "--keys-file", str(tmp_path / "keys.json"), stdout=out)
    info = json.loads(out.getvalue())
    assert info["engine_id"] == spool.engine_id

    _, messages, _ = run(alice, "env-upstream", "weather?", {"tools": [{"type": "function", "function": {
        "name": "get_current_weather", "parameters": {"type": "object"}}}]})  # fmt: skip
    assert messages[-1] == {"stream_type": "tool", "data": {"finish_reason": "tool_calls"}}
    assert upstream.request(key)["headers"]["authorization"] == f"Bearer {API_KEY}"
    output = alice.post("/engine/runPixel", expression=f'GetModelAPI(model="{info["upstream_engine_id"]}");')
    assert output["pixelReturn"][0]["output"] == "OPEN_AI"


def admin_login(spool) -> httpx.Client:
    """A browser-like session on the Django admin, logged in as a new staff user."""
    from django.contrib.auth import get_user_model

    password = secrets.token_urlsafe(16)
    user, _ = get_user_model().objects.get_or_create(username="e2e-admin")
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    client = httpx.Client(base_url=spool.base_url, timeout=30)
    page = client.get("/admin/login/")
    form = {
        "username": "e2e-admin",
        "password": password,
        "next": "/admin/",
        "csrfmiddlewaretoken": csrf(page),
    }
    response = client.post("/admin/login/?next=/admin/", data=form)
    assert response.status_code == 302 and response.headers["location"] == "/admin/", response.text
    return client


def csrf(page: httpx.Response) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)


def test_the_admin_shows_an_engine_but_never_its_secret_and_a_blank_secret_keeps_it(
    spool, upstream, alice, pg
):
    from jobs.models import Engine

    key = new_key()
    engine_id = upstream.engine("up-admin", f"fake?tokens=2&key={key}")
    admin = admin_login(spool)
    listing = admin.get("/admin/jobs/engine/")
    page = admin.get(f"/admin/jobs/engine/{engine_id}/change/")
    assert listing.status_code == page.status_code == 200
    assert "up-admin" in listing.text and "up-admin" in page.text and upstream.base_url in page.text
    assert API_KEY not in listing.text and API_KEY not in page.text

    engine = Engine.objects.get(pk=engine_id)
    saved = admin.post(
        f"/admin/jobs/engine/{engine_id}/change/",
        data={
            "csrfmiddlewaretoken": csrf(page),
            "name": "up-admin",
            "kind": "openai",
            "config": json.dumps({**engine.config, "headers": {"X-Edited": "yes"}}),
            "secret": "",
            "is_active": "on",
            "_save": "Save",
            **NO_DEPLOYMENTS,
        },
    )
    assert saved.status_code == 302, saved.text
    engine.refresh_from_db()
    assert engine.secret == API_KEY and engine.config["headers"] == {"X-Edited": "yes"}
    _, messages, _ = run(alice, engine_id, "still authorised?")
    assert messages[-1]["data"] == {"finish_reason": "stop"}
    assert upstream.request(key)["headers"]["x-edited"] == "yes"
