"""Priorities on the SEMOSS face with the public ai-server-sdk (paramValues as param_dict) and the
SEMOSS HTTP protocol as a frontend speaks it, against a running Spool and worker."""

from __future__ import annotations

import uuid

import pytest
from ai_server import ModelEngine, ServerClient

from tests.e2e.helpers import Frontend, busy_engine, llm_pixel

pytestmark = pytest.mark.e2e


@pytest.fixture
def model(spool) -> ModelEngine:
    ServerClient(base=spool.semoss, access_key=spool.alice.access_key, secret_key=spool.alice.secret_key)
    return ModelEngine(engine_id=spool.engine_id)


def options_of(job_id: str) -> dict:
    from jobs.models import Job

    return Job.objects.get(pk=job_id).options


def test_ask_runs_interactive_and_param_values_may_ask_for_batch(spool, model, pg):
    plain = model.ask(command="Say a word.", param_dict={"max_completion_tokens": 2})
    batch = model.ask(command="Say a word.", param_dict={"max_completion_tokens": 2, "priority": "batch"})
    assert options_of(plain["messageId"])["priority"] == "interactive"
    assert options_of(batch["messageId"])["priority"] == "batch"
    assert batch["response"]  # a class changes when it starts, not what it answers


def test_a_priority_that_is_none_is_an_error_the_sdk_raises(spool, model):
    with pytest.raises(Exception, match="priority"):
        model.ask(command="Say a word.", param_dict={"priority": "asap"})


def test_a_key_capped_at_batch_runs_batch_whatever_it_asks(spool, pg):
    from jobs import services
    from jobs.models import ApiKey

    owner = services.user_ensure(username=spool.alice.username)
    key, secret = services.key_create(owner=owner, name="semoss-batch")
    ApiKey.objects.filter(pk=key.pk).update(max_priority="batch")
    ServerClient(base=spool.semoss, access_key=key.access_key, secret_key=secret)
    out = ModelEngine(engine_id=spool.engine_id).ask(
        command="Say a word.", param_dict={"max_completion_tokens": 2, "priority": "interactive"}
    )
    options = options_of(out["messageId"])
    assert (options["priority"], options["priority_asked"]) == ("batch", "interactive")


def test_a_pixel_that_waits_past_its_queue_timeout_polls_as_an_error(spool, pg):
    from jobs.models import Engine

    busy = busy_engine(spool, spool.alice)
    frontend = Frontend(spool, spool.alice)
    engine_id = str(Engine.objects.get(name=busy.name).pk)
    pixel = llm_pixel(
        engine_id, f"Hello ({uuid.uuid4().hex}).", {"max_completion_tokens": 2, "queue_timeout": 3}
    )
    job_id = frontend.post("/engine/runPixelAsync", expression=pixel, insightId="new")["jobId"]
    assert frontend.post("/engine/pixelJobStreaming", jobId=job_id, cursor=0)["status"] == "Submitted"
    busy.release_after_deadline_of(busy.waiting_job())
    polls = frontend.stream(job_id, cursor=0)
    assert polls[-1]["status"] == "Error"
    assert "queue timeout" in polls[-1]["message"][-1]["data"]["error"]


def test_the_same_idempotency_key_over_http_starts_one_job(spool, pg):
    from jobs.models import Job

    frontend = Frontend(spool, spool.alice)
    pixel = llm_pixel(spool.engine_id, f"Once ({uuid.uuid4().hex}).", {"max_completion_tokens": 2})
    key = {"Idempotency-Key": f"pixel-{uuid.uuid4().hex}"}
    first = frontend.http.post("/engine/runPixelAsync", data={"expression": pixel}, headers=key)
    again = frontend.http.post("/engine/runPixelAsync", data={"expression": pixel}, headers=key)
    assert first.json()["jobId"] == again.json()["jobId"] and again.headers["Idempotent-Replayed"] == "true"
    assert Job.objects.filter(pk=first.json()["jobId"]).count() == 1
    other = llm_pixel(spool.engine_id, "Something else.", {"max_completion_tokens": 2})
    conflict = frontend.http.post("/engine/runPixelAsync", data={"expression": other}, headers=key)
    assert conflict.status_code == 409 and "Idempotency-Key" in conflict.json()["errorMessage"]
