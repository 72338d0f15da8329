"""The job runner against real Postgres and Redis: every job ends with exactly one terminal
chunk, whatever the engine does, and Postgres gets the result before readers see the end."""

from __future__ import annotations

import json
import time

import pytest

from engine import registry
from engine.types import CONTENT, FINISH, TOOL, USAGE, GenerationRequest
from jobs import chunklog, services
from jobs.models import Engine, Job, Room
from jobs.worker.runner import job_run
from tests.support import ScriptedEngine

# The worker loop's own connections claim and end the jobs: the tests commit them.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def scripted_kind(monkeypatch, redis_clean):
    monkeypatch.setitem(registry.KINDS, "scripted", ScriptedEngine)


def make_job(script: list[dict], *, n: int = 1, room: bool = False, options: dict | None = None) -> Job:
    owner = services.user_ensure(username="runner")
    engine = Engine.objects.create(
        name=f"scripted-{Engine.objects.count()}", kind="scripted", config={"script": script}
    )
    request = GenerationRequest(messages=[{"role": "user", "content": "hi"}], n=n)
    room_row = Room.objects.create(owner=owner) if room else None
    return services.job_create(
        owner=owner,
        engine=engine,
        request=request,
        options=options or {},
        face="test",
        room=room_row,
        user_message="hi",
    )


def log_of(job: Job) -> list[dict]:
    from jobs.redis_clients import sync_redis

    return [json.loads(raw) for raw in sync_redis().lrange(chunklog.chunks_key(str(job.pk)), 0, -1)]


def C(text: str, choice: int = 0) -> dict:
    return {"type": CONTENT, "data": {"content": text}, "choice": choice}


def F(reason: str, choice: int = 0) -> dict:
    return {"type": FINISH, "data": {"finish_reason": reason}, "choice": choice}


U = {"type": USAGE, "data": {"input_tokens": 3, "output_tokens": 2}}


def test_a_job_logs_its_chunks_then_usage_then_one_finish():
    job = make_job([C("Hel"), C("lo"), F("stop"), U])
    job_run(job_id=str(job.pk))
    log = log_of(job)
    assert [c["type"] for c in log] == ["content", "content", "usage", "finish"]
    assert log[-1]["data"] == {"finish_reason": "stop"}
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert job.result["choices"][0]["content"] == "Hello"
    assert job.chunks == log  # the archive is the log, exactly


def test_an_engine_error_mid_stream_ends_the_job_with_one_error_chunk_and_keeps_the_partial_output():
    job = make_job([C("partial "), {"raise": "upstream dropped"}])
    job_run(job_id=str(job.pk))
    log = log_of(job)
    assert [c["type"] for c in log] == ["content", "usage", "error"]
    assert log[-1]["data"] == {"code": "upstream_error", "message": "upstream dropped"}
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and job.error == "upstream dropped"
    assert job.result["choices"][0]["content"] == "partial "
    assert job.usage["estimated"] is True


def test_an_engine_that_ends_without_a_finish_reason_fails_the_job():
    job = make_job([C("x")])
    job_run(job_id=str(job.pk))
    assert log_of(job)[-1]["type"] == "error"
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and "finish_reason" in job.error


def test_a_cancel_stops_the_job_at_its_next_write_and_keeps_what_was_written():
    job = make_job([])
    script = [C("a"), {"cancel": str(job.pk)}, C("b"), {"sleep": 0.5}, C("never"), F("stop")]
    job.engine.config = {"script": script}
    job.engine.save()
    job_run(job_id=str(job.pk))
    log = log_of(job)
    written = "".join(c["data"].get("content", "") for c in log if c["type"] == "content")
    assert written in ("a", "ab")  # "a" may be flushed before the cancel lands, "b" is the next write
    assert log[-1] == {"type": "error", "data": {"code": "cancelled", "message": "The job was cancelled."}}
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED and job.result["choices"][0]["content"] == written


def test_a_job_cancelled_while_queued_never_runs_and_ends_once():
    job = make_job([C("never"), F("stop")])
    services.job_cancel(job.pk)
    services.job_cancel(job.pk)
    job_run(job_id=str(job.pk))
    assert log_of(job) == [
        {"type": "error", "data": {"code": "cancelled", "message": "The job was cancelled."}}
    ]
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED


def test_a_redelivered_job_does_not_run_twice():
    job = make_job([C("once"), F("stop"), U])
    job_run(job_id=str(job.pk))
    job_run(job_id=str(job.pk))
    assert [c["type"] for c in log_of(job)] == ["content", "usage", "finish"]


def test_n_choices_end_with_one_terminal_chunk_listing_each_reason():
    job = make_job([C("a", 0), C("b", 1), F("stop", 1), F("length", 0), U], n=2)
    job_run(job_id=str(job.pk))
    log = log_of(job)
    assert [c["type"] for c in log].count("finish") == 1
    assert log[-1]["data"] == {"finish_reason": "length", "choices": ["length", "stop"]}
    job.refresh_from_db()
    assert [c["content"] for c in job.result["choices"]] == ["a", "b"]


def test_a_jobs_first_chunk_leaves_alone_and_chunks_ready_together_in_one_write(monkeypatch):
    writes = []
    real_append_many = chunklog.append_many

    async def counting(batch, **options):
        writes.extend(len(chunks) for job_id, chunks in batch if job_id == str(job.pk))
        return await real_append_many(batch, **options)

    monkeypatch.setattr(chunklog, "append_many", counting)
    # The pause first, as an upstream's time to its first token: the writer is idle by then.
    job = make_job([{"sleep": 0.1}, C("a"), C("b"), C("c"), C("d"), {"sleep": 0.2}, C("e"), F("stop"), U])
    job_run(job_id=str(job.pk))
    # The first chunk alone, at once (a reader's first token does not wait for the rest of what
    # came with it); then b+c+d, ready together, as one batch; e alone after the pause; the ending.
    appended = [n for n in writes if n]  # leaving out the batches that only renewed a heartbeat
    assert appended[:3] == [1, 3, 1]
    assert [c["data"].get("content") for c in log_of(job) if c["type"] == "content"] == [
        "a",
        "b",
        "c",
        "d",
        "e",
    ]


def test_a_silent_engine_keeps_the_heartbeat_and_still_sees_a_cancel(monkeypatch):
    from jobs.redis_clients import sync_redis

    monkeypatch.setattr(chunklog, "HEARTBEAT_SECONDS", 0.05)
    job = make_job([])
    job.engine.config = {"script": [C("a"), {"cancel": str(job.pk)}, {"sleep": 30}, C("late"), F("stop")]}
    job.engine.save()
    started = time.monotonic()
    job_run(job_id=str(job.pk))
    assert time.monotonic() - started < 10  # did not wait for the engine's 30 s silence to end
    assert log_of(job)[-1]["data"]["code"] == "cancelled"
    assert sync_redis().exists(chunklog.alive_key(str(job.pk)))


def test_tool_call_fragments_assemble_into_the_result_and_the_room():
    job = make_job(
        [
            {"type": TOOL, "data": {"index": 0, "id": "call_1", "name": "get_weather"}},
            {"type": TOOL, "data": {"index": 0, "arguments": '{"city": '}},
            {"type": TOOL, "data": {"index": 0, "arguments": '"Boston"}'}},
            F("tool_calls"),
            U,
        ],
        room=True,
    )
    job_run(job_id=str(job.pk))
    job.refresh_from_db()
    calls = [{"id": "call_1", "name": "get_weather", "arguments": '{"city": "Boston"}'}]
    assert job.result["choices"][0]["tool_calls"] == calls
    assert job.room.messages.last().tool_calls == calls


def test_a_job_past_its_time_limit_ends_with_a_timeout_error(spool_env, monkeypatch):
    spool_env(SPOOL_JOB_MAX_SECONDS=0.3)
    monkeypatch.setattr(chunklog, "HEARTBEAT_SECONDS", 0.05)
    job = make_job([C("a"), {"sleep": 30}, F("stop")])
    job_run(job_id=str(job.pk))
    assert log_of(job)[-1]["data"] == {"code": "timeout", "message": "The job ran past its limit of 0.3 s."}
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and job.result["choices"][0]["content"] == "a"


def test_a_log_redis_lost_mid_stream_is_written_back_with_the_same_sequence_numbers():
    job = make_job([])
    job_id = str(job.pk)
    script = [
        C("a"),
        C("b"),
        {"sleep": 0.1},
        {"forget": job_id},
        C("c"),
        {"sleep": 0.1},
        C("d"),
        F("stop"),
        U,
    ]
    job.engine.config = {"script": script}
    job.engine.save()
    job_run(job_id=job_id)
    assert [c["data"].get("content") for c in log_of(job)] == ["a", "b", "c", "d", None, None]
    job.refresh_from_db()
    assert job.chunks == log_of(job)


@pytest.mark.django_db(transaction=True)  # the task threads must see the jobs: commit them
def test_one_jobs_engine_bug_does_not_end_another_job_on_the_same_loop():
    from concurrent.futures import ThreadPoolExecutor

    broken = make_job([C("x"), {"sleep": 0.1}, {"raise": "boom"}])
    healthy = make_job([C("a"), {"sleep": 0.3}, C("b"), F("stop"), U])
    with ThreadPoolExecutor(2) as pool:  # two Celery task threads, one event loop
        list(pool.map(lambda job: job_run(job_id=str(job.pk)), [broken, healthy]))
    assert log_of(broken)[-1]["type"] == "error"
    assert [c["type"] for c in log_of(healthy)] == ["content", "content", "usage", "finish"]


@pytest.mark.parametrize(("options", "wake_ups"), [({}, {2, 3}), ({"batch": "batch_0123"}, {1})])
def test_a_batch_lines_chunks_wake_no_reader_and_its_end_does(options, wake_ups):
    """Nobody streams a Batch API line: only its ending is announced on the job's channel. An
    ordinary job's are too: its two chunks (one write each, or one for both on a slow machine)
    and its ending."""
    from jobs.redis_clients import sync_redis

    paced = [C("a"), {"sleep": 0.05}, C("b"), {"sleep": 0.05}, F("stop"), U]
    job = make_job(paced, options=options)
    channel = chunklog.wake_channel(str(job.pk))
    subscriber = sync_redis().pubsub()
    subscriber.ssubscribe(channel)
    try:
        job_run(job_id=str(job.pk))
        sync_redis().spublish(channel, b"marker")  # after every wake-up the run published
        heard: list[bytes] = []
        deadline = time.monotonic() + 10  # a bound on a broken test, not a measurement
        while b"marker" not in heard and time.monotonic() < deadline:
            found = subscriber.get_sharded_message(ignore_subscribe_messages=True, timeout=0.5)
            if found is not None:
                heard.append(found["data"])
    finally:
        subscriber.close()
    assert heard[-1] == b"marker" and len(heard) - 1 in wake_ups
    # An ordinary job's wake-ups carried the chunks they announced: together, the whole log in
    # order. A batch line's one wake-up (its end) leaves out the chunks nobody was told of.
    assert chunklog.carried_chunks(heard[:-1], 0) == (None if options else log_of(job))
    assert [c["type"] for c in log_of(job)] == ["content", "content", "usage", "finish"]
