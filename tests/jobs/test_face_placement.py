"""How each face places a job (jobs/faces/common/placement.py and each face's own parameters),
in process against real Postgres and Redis: the class it runs at, capped by the caller's key;
its deadlines; a refused value answered 400 in the face's shape; an expired job as the face
renders a failed one; the same Idempotency-Key answered with the same job, and with another
request refused 409. No worker runs here: a test that needs a job's end runs it in process."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework.test import APIRequestFactory

from jobs import services
from jobs.faces.common.placement import placement_of
from jobs.models import ApiKey, Engine, Job, RoomMessage
from jobs.worker.runner import job_run
from tests.e2e.helpers import llm_pixel

# The worker loop's own connections claim and end the jobs: the tests commit them.
pytestmark = pytest.mark.django_db(transaction=True)

KEY = "Idempotency-Key"


@dataclass
class Caller:
    user: Any
    key: ApiKey
    secret: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}

    @property
    def basic(self) -> dict[str, str]:
        pair = base64.b64encode(f"{self.key.access_key}:{self.secret}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}


def new_caller(username: str = "placer", *, max_priority: str = "interactive", weight: int = 1) -> Caller:
    """A key of its own: the process caches a key's grant, so a test never changes a key it used."""
    user = services.user_ensure(username=username)
    key, secret = services.key_create(owner=user)
    ApiKey.objects.filter(pk=key.pk).update(max_priority=max_priority, weight=weight)
    return Caller(user, key, secret)


@pytest.fixture
def caller(redis_clean) -> Caller:
    return new_caller()


@pytest.fixture
def engine(db) -> Engine:
    return services.engine_ensure_offline()


def expire(job_id: str) -> Job:
    """What a worker does with a job that waited past its deadline: it takes it, and ends it."""
    job = Job.objects.get(pk=job_id)
    job.options = {**job.options, "queue_deadline": time.time() - 1}
    job.save(update_fields=["options"])
    job_run(job_id=job_id)
    return Job.objects.get(pk=job_id)


def deadline_after(now: float, seconds: float) -> float:
    """A queue deadline as job options keep it (to the millisecond)."""
    return round(now + seconds, 3)


def error_of(response) -> dict[str, Any]:
    return response.json()["error"]


# ---- the shared helper -----------------------------------------------------------------------


def test_a_password_session_has_no_cap_and_weight_one():
    request = APIRequestFactory().post("/v1/jobs", HTTP_X_SPOOL_QUEUE_TIMEOUT="2.5")
    request.auth = None  # what a session's authentication leaves: no key
    placement = placement_of(_drf(request), waiting=True)
    assert (placement.cap, placement.weight, placement.queue_timeout) == ("interactive", 1, 2.5)


def test_a_keys_cap_and_weight_come_from_its_row(caller):
    from jobs.access import KeyGrant

    ApiKey.objects.filter(pk=caller.key.pk).update(max_priority="batch", weight=3)
    grant = KeyGrant.of(ApiKey.objects.select_related("owner").get(pk=caller.key.pk))
    request = _drf(APIRequestFactory().post("/v1/jobs"))
    request.auth = grant
    placement = placement_of(request, waiting=False)
    assert (placement.cap, placement.weight) == ("batch", 3)


def _drf(django_request):
    from rest_framework.request import Request

    return Request(django_request)


# ---- native /v1/jobs -------------------------------------------------------------------------


def create_job(client, caller: Caller, engine: Engine, headers: dict[str, str] | None = None, **body: Any):
    payload = {"engine": engine.name, "command": "Speak.", "parameters": {"max_tokens": 2}, **body}
    return client.post(
        "/v1/jobs",
        json.dumps(payload),
        content_type="application/json",
        headers={**caller.bearer, **(headers or {})},
    )


def test_native_jobs_run_at_default_unless_they_ask(client, caller, engine):
    plain = create_job(client, caller, engine)
    assert plain.status_code == 202 and plain.json()["priority"] == "default"
    urgent = create_job(client, caller, engine, priority="interactive")
    assert urgent.json()["priority"] == "interactive"
    assert Job.objects.get(pk=urgent.json()["id"]).options["priority"] == "interactive"
    # Unlimited engine: nothing to wait for, nothing to show.
    assert "queue" not in urgent.json()


def test_native_a_key_capped_at_batch_runs_batch_and_the_job_keeps_what_was_asked(
    client, engine, redis_clean
):
    capped = new_caller("capped", max_priority="batch")
    body = create_job(client, capped, engine, priority="interactive").json()
    options = Job.objects.get(pk=body["id"]).options
    assert (body["priority"], options["priority"], options["priority_asked"]) == (
        "batch",
        "batch",
        "interactive",
    )


def test_native_timeouts_from_the_body_win_over_the_headers(client, caller, engine):
    before = time.time()
    body = create_job(
        client, caller, engine, {"X-Spool-Queue-Timeout": "600", "X-Spool-Run-Timeout": "30"}, queue_timeout=5
    ).json()
    options = Job.objects.get(pk=body["id"]).options
    assert deadline_after(before, 5) <= options["queue_deadline"] <= deadline_after(time.time(), 5)
    assert options["run_timeout"] == 30  # the header, as the body gave none


@pytest.mark.parametrize(
    ("body", "headers", "param"),
    [
        ({"priority": "urgent"}, {}, "priority"),
        ({"priority": 1}, {}, "priority"),
        ({"queue_timeout": 0}, {}, "queue_timeout"),
        ({"queue_timeout": "5"}, {}, "queue_timeout"),
        ({"run_timeout": -1}, {}, "run_timeout"),
        ({}, {"X-Spool-Queue-Timeout": "soon"}, "X-Spool-Queue-Timeout"),
        ({}, {"X-Spool-Run-Timeout": "inf"}, "X-Spool-Run-Timeout"),
    ],
)
def test_native_a_bad_priority_or_timeout_is_a_400_naming_it(client, caller, engine, body, headers, param):
    refused = create_job(client, caller, engine, headers, **body)
    assert refused.status_code == 400
    assert (error_of(refused)["param"], error_of(refused)["code"]) == (param, "invalid_value")
    assert not Job.objects.exists()


def test_native_an_expired_job_reads_as_failed_with_code_expired(client, caller, engine):
    job_id = create_job(client, caller, engine).json()["id"]
    assert expire(job_id).finish_reason == "expired"
    view = client.get(f"/v1/jobs/{job_id}", headers=caller.bearer).json()
    assert (view["status"], view["finish_reason"], view["error"]["code"]) == ("failed", "expired", "expired")
    assert view["started_at"] is not None and view["first_chunk_at"] is None


def test_native_the_same_idempotency_key_answers_the_same_job(client, caller, engine):
    first = create_job(client, caller, engine, {KEY: "order-1"})
    again = create_job(client, caller, engine, {KEY: "order-1"})
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"] and Job.objects.count() == 1
    assert "Idempotent-Replayed" not in first and again["Idempotent-Replayed"] == "true"
    # Another owner's key of the same name is another key.
    other = create_job(client, new_caller("other"), engine, {KEY: "order-1"})
    assert other.json()["id"] != first.json()["id"]


def test_native_the_same_key_with_another_request_is_a_409(client, caller, engine):
    create_job(client, caller, engine, {KEY: "order-2"})
    conflict = create_job(client, caller, engine, {KEY: "order-2"}, command="Something else.")
    assert conflict.status_code == 409 and error_of(conflict)["code"] == "idempotency_key_conflict"
    lowered = create_job(client, caller, engine, {KEY: "order-2"}, priority="batch")
    assert lowered.status_code == 409  # another class is another request
    assert Job.objects.count() == 1


def test_native_an_idempotency_key_too_long_is_a_400(client, caller, engine):
    refused = create_job(client, caller, engine, {KEY: "k" * 256})
    assert refused.status_code == 400 and error_of(refused)["code"] == "invalid_idempotency_key"


@pytest.mark.django_db(transaction=True)
def test_native_a_queued_job_of_a_limited_engine_says_where_it_waits(client, redis_clean):
    caller = new_caller()
    limited = services.engine_upsert(name="one-slot", kind="offline", config={"tokens_per_second": 30})
    Engine.objects.filter(pk=limited.pk).update(max_concurrency=1)
    limited.refresh_from_db()
    first = create_job(client, caller, limited).json()  # takes the one slot (no worker here runs it)
    second = create_job(client, caller, limited, priority="batch").json()
    third = create_job(client, caller, limited, priority="batch").json()
    assert first["queue"]["state"] == "admitted"
    assert second["queue"] == {"priority": "batch", "state": "waiting", "reason": "engine_full", "ahead": 0}
    assert third["queue"]["ahead"] == 1
    seen = client.get(f"/v1/jobs/{third['id']}", headers=caller.bearer).json()
    assert seen["queue"] == third["queue"] and seen["priority"] == "batch"


# ---- SEMOSS ----------------------------------------------------------------------------------


def run_pixel_async(
    client, caller: Caller, engine: Engine, params: dict[str, Any] | None = None, **headers: str
):
    expression = llm_pixel(str(engine.pk), "Speak.", {"max_completion_tokens": 2, **(params or {})})
    return client.post(
        "/Monolith/api/engine/runPixelAsync",
        {"expression": expression, "insightId": "new"},
        headers={**caller.basic, **headers},
    )


def test_semoss_an_llm_call_is_interactive_unless_its_param_values_say(client, caller, engine):
    plain = run_pixel_async(client, caller, engine).json()["jobId"]
    before = time.time()
    batch = run_pixel_async(client, caller, engine, {"priority": "batch", "queue_timeout": 30}).json()[
        "jobId"
    ]
    assert Job.objects.get(pk=plain).options["priority"] == "interactive"
    options = Job.objects.get(pk=batch).options
    assert options["priority"] == "batch"
    assert deadline_after(before, 30) <= options["queue_deadline"] <= deadline_after(time.time(), 30)


@pytest.mark.parametrize(
    ("params", "named"), [({"priority": "asap"}, "priority"), ({"queue_timeout": "soon"}, "queue_timeout")]
)
def test_semoss_a_bad_priority_in_param_values_is_refused_as_any_bad_param(
    client, caller, engine, params, named
):
    refused = run_pixel_async(client, caller, engine, params)
    body = refused.json()
    assert refused.status_code == 400 and body["jobId"] is None and named in body["errorMessage"]
    assert body["pixelReturn"][0]["operationType"] == ["ERROR"]


def test_semoss_a_bad_timeout_header_is_a_400_in_the_semoss_shape(client, caller, engine):
    refused = run_pixel_async(client, caller, engine, **{"X-Spool-Queue-Timeout": "-3"})
    assert refused.status_code == 400 and "X-Spool-Queue-Timeout" in refused.json()["errorMessage"]


def test_semoss_an_expired_job_polls_as_an_error(client, caller, engine):
    job_id = run_pixel_async(client, caller, engine).json()["jobId"]
    expire(job_id)
    poll = client.post(
        "/Monolith/api/engine/pixelJobStreaming", {"jobId": job_id}, headers=caller.basic
    ).json()
    assert poll["status"] == "Error"
    assert poll["message"][-1]["data"]["finish_reason"] == "error"
    assert "queue timeout" in poll["message"][-1]["data"]["error"]
    result = client.post("/Monolith/api/engine/result", {"jobId": job_id}, headers=caller.basic).json()
    assert result["pixelReturn"][0]["operationType"] == ["ERROR"]


def test_semoss_the_same_key_starts_one_job_and_another_pixel_is_a_409(client, caller, engine):
    first = run_pixel_async(client, caller, engine, **{KEY: "pixel-1"})
    again = run_pixel_async(client, caller, engine, **{KEY: "pixel-1"})
    assert first.json()["jobId"] == again.json()["jobId"] and Job.objects.count() == 1
    assert again["Idempotent-Replayed"] == "true"
    conflict = run_pixel_async(client, caller, engine, {"priority": "batch"}, **{KEY: "pixel-1"})
    assert conflict.status_code == 409 and "Idempotency-Key" in conflict.json()["errorMessage"]


def test_semoss_a_retried_call_in_a_room_is_a_replay_after_the_first_one_ended(client, caller, engine):
    """The room's history grows once the first call ends (its answer joins it); the retry is the
    same call all the same."""
    room = services.room_resolve(owner=caller.user, room_id=None)
    expression = llm_pixel(str(engine.pk), "Speak.", {"max_completion_tokens": 2}, roomId=str(room.pk))

    def call() -> Any:
        return client.post(
            "/Monolith/api/engine/runPixelAsync",
            {"expression": expression, "insightId": "new"},
            headers={**caller.basic, KEY: "in-a-room"},
        )

    first = call().json()["jobId"]
    RoomMessage.objects.create(room=room, role="assistant", content="An answer.")
    again = call()
    assert again.json()["jobId"] == first and again["Idempotent-Replayed"] == "true"
    assert Job.objects.filter(room=room).count() == 1


# ---- OpenAI Responses in the background (the answer comes before the job ends) ---------------


def create_response(client, caller: Caller, headers: dict[str, str] | None = None, **body: Any):
    payload = {
        "model": "spool-offline",
        "input": "Speak.",
        "max_output_tokens": 2,
        "background": True,
        **body,
    }
    return client.post(
        "/v1/responses", json.dumps(payload), content_type="application/json",
        headers={**caller.bearer, **(headers or {})},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("tier", "runs_at", "echoed"),
    [(None, "default", None), ("auto", "default", "default"), ("priority", "interactive", "priority"),
     ("flex", "batch", "flex")],
)  # fmt: skip
def test_responses_service_tier_picks_the_class_and_is_echoed(client, caller, engine, tier, runs_at, echoed):
    body = create_response(client, caller, **({"service_tier": tier} if tier else {})).json()
    assert Job.objects.get(face="responses").options["priority"] == runs_at
    assert body.get("service_tier") == echoed


def test_responses_a_capped_key_is_told_the_tier_it_got(client, engine, redis_clean):
    capped = new_caller("capped-openai", max_priority="batch")
    body = create_response(client, capped, service_tier="priority").json()
    assert body["service_tier"] == "flex"
    assert Job.objects.get(face="responses").options["priority_asked"] == "interactive"


@pytest.mark.parametrize("path", ["/v1/responses", "/v1/chat/completions", "/v1/completions"])
def test_openai_an_unknown_service_tier_is_a_400_on_every_create(client, caller, engine, path):
    body = {
        "/v1/responses": {"model": "spool-offline", "input": "x", "service_tier": "turbo"},
        "/v1/chat/completions": {"model": "spool-offline", "messages": [{"role": "user", "content": "x"}],
                                 "service_tier": "turbo"},
        "/v1/completions": {"model": "spool-offline", "prompt": "x", "service_tier": "turbo"},
    }[path]  # fmt: skip
    refused = client.post(path, json.dumps(body), content_type="application/json", headers=caller.bearer)
    assert refused.status_code == 400
    assert (error_of(refused)["param"], error_of(refused)["code"]) == ("service_tier", "invalid_value")


def test_responses_an_expired_response_fails_with_code_expired(client, caller, engine):
    response_id = create_response(client, caller).json()["id"]
    expire(Job.objects.get(face="responses").pk)
    body = client.get(f"/v1/responses/{response_id}", headers=caller.bearer).json()
    assert body["status"] == "failed" and body["error"]["code"] == "expired"


def test_responses_a_replay_answers_the_same_response_and_a_conflict_is_not_retried(client, caller, engine):
    first = create_response(client, caller, {KEY: "resp-1"})
    again = create_response(client, caller, {KEY: "resp-1"})
    assert first.json()["id"] == again.json()["id"] and again["Idempotent-Replayed"] == "true"
    assert again["X-Spool-Job-Id"] == first["X-Spool-Job-Id"]
    conflict = create_response(client, caller, {KEY: "resp-1"}, input="Another.")
    assert conflict.status_code == 409 and error_of(conflict)["code"] == "idempotency_key_conflict"
    assert conflict["x-should-retry"] == "false"  # the openai SDK would otherwise send it again
    assert Job.objects.count() == 1


@pytest.mark.parametrize("header", ["X-Spool-Queue-Timeout", "X-Spool-Run-Timeout"])
def test_openai_a_timeout_header_that_is_no_number_of_seconds_is_a_400_naming_it(
    client, caller, engine, header
):
    body = {"model": "spool-offline", "messages": [{"role": "user", "content": "x"}]}
    refused = client.post(
        "/v1/chat/completions", json.dumps(body), content_type="application/json",
        headers={**caller.bearer, header: "0"},
    )  # fmt: skip
    assert refused.status_code == 400
    assert (error_of(refused)["param"], error_of(refused)["type"]) == (header, "invalid_request_error")
    assert not Job.objects.exists()
