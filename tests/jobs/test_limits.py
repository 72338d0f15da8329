"""Abuse limits: each answers 429 (or 413) with Retry-After in the calling face's shape."""

from __future__ import annotations

import base64

import pytest

from engine.types import GenerationRequest
from jobs import chunklog, services
from jobs.faces.common.errors import FaceError as ParamError
from jobs.faces.common.params import build_request

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("one_limit_window")]


@pytest.fixture
def caller(redis_clean):
    user = services.user_ensure(username="limited")
    key, secret = services.key_create(owner=user)
    basic = base64.b64encode(f"{key.access_key}:{secret}".encode()).decode()
    return {"basic": f"Basic {basic}", "bearer": f"Bearer {secret}", "user": user}


@pytest.fixture
def engine_id(db) -> str:
    return str(services.engine_ensure_offline().pk)


def submit(client, caller, engine_id: str):
    expression = f'LLM(engine="{engine_id}", command="<encode>hi</encode>");'
    return client.post(
        "/Monolith/api/engine/runPixelAsync",
        {"expression": expression, "insightId": "new"},
        headers={"Authorization": caller["basic"]},
    )


def limit(spool_env, **values) -> None:
    spool_env(**{f"SPOOL_{name}": value for name, value in values.items()})


def test_job_starts_over_the_per_minute_limit_get_a_429_with_retry_after(
    client, caller, engine_id, spool_env
):
    limit(spool_env, JOBS_PER_MINUTE=2, MAX_ACTIVE_JOBS=0)
    assert [submit(client, caller, engine_id).status_code for _ in range(2)] == [200, 200]
    refused = submit(client, caller, engine_id)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    body = refused.json()
    assert body["status"] == "Unavailable" and "2 jobs per minute" in body["errorMessage"]


def test_a_caller_with_too_many_active_jobs_must_wait(client, caller, engine_id, spool_env):
    limit(spool_env, MAX_ACTIVE_JOBS=1)
    assert submit(client, caller, engine_id).status_code == 200  # stays queued: no worker here
    refused = submit(client, caller, engine_id)
    assert refused.status_code == 429 and "at most 1 queued or running" in refused.json()["errorMessage"]


def test_requests_over_the_per_minute_limit_get_a_429_in_openai_shape_on_v1(client, caller, spool_env):
    limit(spool_env, REQUESTS_PER_MINUTE=3)
    codes = [
        client.get("/v1/models", headers={"Authorization": caller["bearer"]}).status_code for _ in range(4)
    ]
    assert 429 not in codes[:3] and codes[3] == 429
    refused = client.get("/v1/models", headers={"Authorization": caller["bearer"]})
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert int(refused["Retry-After"]) >= 1


def test_one_callers_limit_does_not_touch_another(client, caller, spool_env):
    limit(spool_env, REQUESTS_PER_MINUTE=2)
    for _ in range(3):
        client.get("/v1/models", headers={"Authorization": caller["bearer"]})
    other = services.key_create(owner=caller["user"])[1]
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {other}"}).status_code != 429


def test_a_body_over_the_size_limit_gets_a_413(client, caller, engine_id, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    expression = f'LLM(engine="{engine_id}", command="<encode>{"x" * 5000}</encode>");'
    response = client.post(
        "/Monolith/api/engine/runPixelAsync",
        {"expression": expression},
        headers={"Authorization": caller["basic"]},
    )
    assert response.status_code == 413 and "too large" in response.json()["errorMessage"]


def test_too_many_messages_or_output_tokens_are_refused(spool_env):
    limit(spool_env, MAX_MESSAGES=3, MAX_OUTPUT_TOKENS=100)
    many = [{"role": "user", "content": "x"}] * 4
    with pytest.raises(ParamError) as messages:
        build_request(many, {}, known=frozenset())
    assert (messages.value.param, messages.value.code) == ("messages", "array_above_max_length")
    with pytest.raises(ParamError) as tokens:
        build_request(many[:1], {"max_tokens": 101}, known=frozenset({"max_tokens"}))
    assert (tokens.value.param, tokens.value.code) == ("max_tokens", "integer_above_max_value")
    request, _ = build_request(many[:1], {"max_tokens": 100}, known=frozenset({"max_tokens"}))
    assert isinstance(request, GenerationRequest) and request.max_tokens == 100


def poll(client, caller, job_id: str, cursor: int | None = None):
    form = {"jobId": job_id} if cursor is None else {"jobId": job_id, "cursor": cursor}
    return client.post(
        "/Monolith/api/engine/pixelJobStreaming", form, headers={"Authorization": caller["basic"]}
    )


def test_job_polls_are_counted_with_their_read_and_refused_over_the_limit_before_handing_out(
    client, caller, engine_id, spool_env
):
    limit(spool_env, REQUESTS_PER_MINUTE=4, JOBS_PER_MINUTE=0, MAX_ACTIVE_JOBS=0)
    job_id = submit(client, caller, engine_id).json()["jobId"]  # request 1
    chunklog.append(job_id, [{"type": "content", "data": {"content": "one"}}])
    first = poll(client, caller, job_id)  # 2: the stateful poll hands "one" out
    assert first.status_code == 200 and first.json()["message"][0]["data"] == {"content": "one"}
    assert poll(client, caller, job_id, cursor=0).status_code == 200  # 3
    assert poll(client, caller, job_id, cursor=0).status_code == 200  # 4
    chunklog.append(job_id, [{"type": "content", "data": {"content": "two"}}])
    refused = poll(client, caller, job_id)  # 5: over the limit
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert (
        refused.json()["status"] == "Unavailable"
        and "4 requests per minute" in refused.json()["errorMessage"]
    )
    # The refused poll handed nothing out: "two" is still the next poll's.
    limit(spool_env, REQUESTS_PER_MINUTE=0)
    assert [m["data"] for m in poll(client, caller, job_id).json()["message"]] == [{"content": "two"}]


@pytest.mark.parametrize("job_id", ["not-a-uuid", "00000000-0000-4000-8000-000000000000"])
def test_job_polls_that_read_no_job_are_counted_too(client, caller, spool_env, job_id):
    limit(spool_env, REQUESTS_PER_MINUTE=2)
    answers = [poll(client, caller, job_id, cursor=0) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0].json()["status"] == "UnknownJob" and answers[2].json()["status"] == "Unavailable"


def test_a_job_poll_refused_before_its_read_is_counted_and_answered_429_over_the_limit(
    client, caller, spool_env
):
    limit(spool_env, REQUESTS_PER_MINUTE=1)

    def send():
        return client.post(
            "/Monolith/api/engine/pixelJobStreaming",
            b"jobId=x",
            content_type="text/plain",
            headers={"Authorization": caller["basic"]},
        )

    assert send().status_code == 415  # refused before any read of the job
    assert send().status_code == 429
