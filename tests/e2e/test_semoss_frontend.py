"""The frontend flow of seed 002 over raw HTTP: runPixelAsync, then pixelJobStreaming polls."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.helpers import NO_EOT, Frontend, make_engine, messages_of, text_of

pytestmark = pytest.mark.e2e


@pytest.fixture
def alice(spool) -> Frontend:
    return Frontend(spool, spool.alice)


@pytest.fixture
def bob(spool) -> Frontend:
    return Frontend(spool, spool.bob)


@pytest.mark.cluster
def test_it_streams_a_job_in_polls_until_finish_reason_and_stores_the_same_text(spool, alice, pg):
    from jobs.models import Job

    job_id = alice.submit(
        spool.engine_id,
        "write me a paragraph about soccer",
        {"max_completion_tokens": 40, "seed": 7, **NO_EOT},
    )
    polls = alice.stream(job_id)
    messages = messages_of(polls)

    content_polls = [p for p in polls if any("content" in m["data"] for m in p["message"])]
    assert len(content_polls) >= 3, "tokens should arrive over several polls, not all at the end"
    assert messages[-1] == {"stream_type": "content", "data": {"finish_reason": "length"}}
    assert polls[-1]["status"] == "ProgressComplete"
    usage = [m for m in messages if m["stream_type"] == "usage"]
    assert usage and usage[0]["data"]["output_tokens"] == 40
    assert {p["status"] for p in polls[:-1]} <= {"Submitted", "InProgress", "Streaming"}

    job = Job.objects.get(pk=job_id)
    assert job.status == Job.Status.SUCCEEDED and job.finish_reason == "length"
    assert text_of(messages) == job.result["choices"][0]["content"] != ""
    assert job.started_at and job.first_chunk_at and job.finished_at and job.usage["output_tokens"] == 40

    result = alice.post("/engine/result", jobId=job_id)
    assert result["pixelReturn"][0]["output"]["response"] == text_of(messages)


def test_each_poll_hands_out_only_chunks_not_handed_out_before(spool, alice):
    job_id = alice.submit(spool.engine_id, "tell me of kings", {"max_completion_tokens": 30, "seed": 1})
    polls = alice.stream(job_id)
    handed = messages_of(polls)
    # A cursor read from 0 is the whole log: the stateful polls covered it exactly once.
    replay = alice.post("/engine/pixelJobStreaming", jobId=job_id, cursor=0)
    assert replay["message"] == handed
    assert alice.post("/engine/pixelJobStreaming", jobId=job_id)["message"] == []


def test_a_natural_end_finishes_with_stop(spool, alice):
    job_id = alice.submit(
        spool.engine_id, "say something", {"max_completion_tokens": 2000, "stop": ["."], "seed": 3}
    )
    messages = messages_of(alice.stream(job_id))
    assert messages[-1]["data"] == {"finish_reason": "stop"}
    assert "." not in text_of(messages)


@pytest.mark.cluster
def test_two_readers_with_cursors_both_get_every_chunk(spool, alice):
    job_id = alice.submit(spool.engine_id, "the sea", {"max_completion_tokens": 25, "seed": 5, **NO_EOT})
    cursors, seen = {"a": 0, "b": 0}, {"a": [], "b": []}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(
        s and "finish_reason" in s[-1]["data"] for s in seen.values()
    ):
        for reader in ("a", "b"):
            if seen[reader] and "finish_reason" in seen[reader][-1]["data"]:
                continue
            body = alice.post("/engine/pixelJobStreaming", jobId=job_id, cursor=cursors[reader])
            cursors[reader] = body["cursor"]
            seen[reader].extend(body["message"])
    assert seen["a"] == seen["b"]
    assert seen["a"][-1]["data"] == {"finish_reason": "length"}


def test_a_tight_polling_loop_gets_no_empty_answers_while_tokens_flow(spool, alice, pg):
    """Long-poll: with tokens 0.25 s apart, a client polling without sleeping is held until each
    token lands instead of spinning on empty answers."""
    engine_id = make_engine("slow-offline", tokens_per_second=4)
    job_id = alice.submit(engine_id, "slowly", {"max_completion_tokens": 6, "seed": 2, **NO_EOT})
    polls = alice.stream(job_id)
    started = [i for i, p in enumerate(polls) if p["message"]]
    empty_while_streaming = [p for p in polls[started[0] :] if not p["message"]]
    assert len(polls) <= 6 + 3  # one poll per token, plus the queued/started polls and the end
    assert empty_while_streaming == []


@pytest.mark.cluster
def test_status_result_and_terminate(spool, alice):
    job_id = alice.submit(spool.engine_id, "a very long story", {"max_completion_tokens": 3000, **NO_EOT})
    first = alice.post("/engine/pixelJobStreaming", jobId=job_id)
    assert alice.post("/engine/status", jobId=job_id)["status"] in {"InProgress", "Streaming"}
    assert alice.post("/engine/result", jobId=job_id)["pixelReturn"] == []

    assert alice.post("/engine/terminate", jobId=job_id)["status"] == "Canceled"
    assert alice.post("/engine/terminate", jobId=job_id)["status"] == "Canceled"  # harmless twice
    rest = alice.stream(job_id)
    messages = first["message"] + messages_of(rest)
    assert messages[-1]["data"]["finish_reason"] == "cancelled"
    assert rest[-1]["status"] == "Canceled"
    assert alice.post("/engine/status", jobId=job_id)["status"] == "Canceled"
    result = alice.post("/engine/result", jobId=job_id)
    assert result["pixelReturn"][0]["operationType"] == ["ERROR"]


@pytest.mark.cluster
def test_a_cancelled_job_keeps_its_partial_output(spool, alice, pg):
    from jobs.models import Job

    job_id = alice.submit(spool.engine_id, "on and on", {"max_completion_tokens": 3000, **NO_EOT})
    streamed = []
    while len(text_of(streamed)) < 20:
        streamed += alice.post("/engine/pixelJobStreaming", jobId=job_id)["message"]
    first = alice.post("/engine/terminate", jobId=job_id)
    streamed += messages_of(alice.stream(job_id))
    again = alice.post("/engine/terminate", jobId=job_id)  # harmless: the same answer
    assert first == again == {"jobId": job_id, "status": "Canceled"}
    assert alice.post("/engine/status", jobId=job_id)["status"] == "Canceled"
    job = Job.objects.get(pk=job_id)
    assert job.status == Job.Status.CANCELLED
    assert job.result["choices"][0]["content"] == text_of(streamed)
    assert len(job.result["choices"][0]["content"]) >= 20


def test_every_endpoint_answers_the_same_after_the_live_log_expires(spool, alice):
    from jobs import chunklog
    from jobs.redis_clients import sync_redis

    job_id = alice.submit(spool.engine_id, "remember me", {"max_completion_tokens": 20, "seed": 11})
    live = messages_of(alice.stream(job_id))
    live_result = alice.post("/engine/result", jobId=job_id)
    live_partial = alice.post("/engine/partial", jobId=job_id)

    # What the TTL does, done now: every Redis key of the job is gone.
    redis = sync_redis()
    redis.delete(*redis.keys(chunklog.chunks_key(job_id).rsplit(":", 1)[0] + ":*"))

    assert alice.post("/engine/pixelJobStreaming", jobId=job_id, cursor=0)["message"] == live
    assert alice.post("/engine/pixelJobStreaming", jobId=job_id)["message"] == live
    assert alice.post("/engine/result", jobId=job_id) == live_result
    after = alice.post("/engine/partial", jobId=job_id)
    assert after["message"]["total"] == live_partial["message"]["total"] == text_of(live)
    assert after["status"] == "ProgressComplete"
    assert alice.post("/engine/status", jobId=job_id)["status"] == "ProgressComplete"


def test_fifty_jobs_on_one_worker_generate_at_the_same_time(spool, alice, pg):
    """Fifty paced jobs (2 s of generation each) on one worker run side by side, not one after
    another: read from the times each job records, not from a stopwatch around the test."""
    from jobs.models import Job

    engine_id = make_engine("paced-offline", tokens_per_second=25)
    params = {"max_completion_tokens": 50, "seed": 4, **NO_EOT}
    ids = [alice.submit(engine_id, "march", params) for _ in range(50)]
    for job_id in ids:
        alice.stream(job_id)
    jobs = Job.objects.filter(pk__in=ids, status=Job.Status.SUCCEEDED)
    assert jobs.count() == 50
    # The most jobs generating at one moment: 1 if the worker ran them one at a time.
    edges = sorted(
        [(job.started_at, 1) for job in jobs] + [(job.finished_at, -1) for job in jobs],
        key=lambda edge: (edge[0], edge[1]),
    )
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert peak >= 10, peak


def test_another_users_job_is_an_unknown_job(spool, alice, bob):
    job_id = alice.submit(spool.engine_id, "mine", {"max_completion_tokens": 5})
    for path in ("/engine/pixelJobStreaming", "/engine/status", "/engine/terminate", "/engine/result"):
        assert bob.post(path, jobId=job_id)["status"] == "UnknownJob", path
    assert bob.post("/engine/partial", jobId=job_id)["status"] == "UnknownJob"
    alice.stream(job_id)  # and bob's terminate did not touch it
    assert alice.post("/engine/status", jobId=job_id)["status"] == "ProgressComplete"


@pytest.mark.parametrize("job_id", ["", "not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_a_missing_or_unknown_job_id_is_an_unknown_job(alice, job_id):
    assert alice.post("/engine/pixelJobStreaming", jobId=job_id) == {"message": [], "status": "UnknownJob"}
    assert alice.post("/engine/status", jobId=job_id)["status"] == "UnknownJob"


def test_wrong_or_missing_credentials_get_401(spool):
    for auth in [None, ("spool-ak-nope", "spool-sk-nope")]:
        response = httpx.post(f"{spool.semoss}/engine/pixelJobStreaming", data={"jobId": "x"}, auth=auth)
        assert response.status_code == 401
        assert "errorMessage" in response.json()
    config = httpx.get(f"{spool.semoss}/config", auth=("spool-ak-nope", "spool-sk-nope")).json()
    assert "loginDetails" not in config


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ('LLM(engine="x", command="<encode>hi</encode>"', "Expected"),
        ("Frobnicate(x=1);", "Unknown reactor 'Frobnicate'"),
        ('LLM(engine="no-such-engine", command="<encode>hi</encode>");', "Unknown engine"),
        ('LLM(engine="{engine}", command="<encode>hi</encode>", paramValues=[{{nope}}]);',
         "Invalid JSON object in argument 'paramValues'"),
        ('LLM(engine="{engine}", command="<encode>hi</encode>", paramValues=[{{"temperature": 9}}]);',
         "Expected a value <= 2"),
        ('LLM(engine="{engine}", command="<encode>hi</encode>", paramValues=[{{"top_logprobs": 2}}]);',
         "'logprobs' must be set to true"),
        ('LLM(engine="{engine}", command="<encode>hi</encode>", paramValues=[{{"tools": [{{}}]}}]);',
         "cannot honour 'tools'"),
        ('LLM(engine="{engine}", paramValues=[{{"temperature": 0.5}}]);', "needs a command"),
    ],
)  # fmt: skip
def test_bad_pixels_get_an_error_pixel_return_and_leave_no_job_behind(spool, alice, pg, expression, message):
    from jobs.models import Job

    before = Job.objects.count()
    expression = expression.format(engine=spool.engine_id)
    for path in ("/engine/runPixel", "/engine/runPixelAsync"):
        body = alice.post(path, expression=expression, insightId="new")
        pixel_return = body["pixelReturn"][0]
        assert pixel_return["operationType"] == ["ERROR"], body
        assert message in pixel_return["output"]
    assert Job.objects.count() == before
