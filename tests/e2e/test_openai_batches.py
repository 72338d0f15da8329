"""OpenAI's Batch API through the unmodified openai SDK: files uploaded, batches run to their end
on the workers (each line a job of class batch), answers read back line by line."""

from __future__ import annotations

import io
from collections import Counter

import openai
import pytest

from tests.e2e import openai_helpers
from tests.e2e.batch_helpers import chat_line, read_lines, run, upload, wait
from tests.e2e.openai_helpers import NO_EOT, OFFLINE

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(spool) -> openai.OpenAI:
    return openai_helpers.client(spool)


def _once(lines: list[dict]) -> Counter:
    return Counter(line["custom_id"] for line in lines)


def test_a_chat_batch_runs_every_line_once_and_answers_as_the_endpoint_does(client, engine_for):
    model = engine_for("fake")
    items = [chat_line(f"req-{i}", model, f"Question {i}", max_completion_tokens=4) for i in range(30)]
    batch = run(client, items, metadata={"suite": "e2e"})
    assert batch.status == "validating" and batch.metadata == {"suite": "e2e"}
    assert batch.endpoint == "/v1/chat/completions" and batch.completion_window == "24h"

    done = wait(client, batch.id)

    assert done.status == "completed", done.errors
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (
        30,
        30,
        0,
    )
    assert done.in_progress_at and done.finalizing_at and done.completed_at
    assert done.error_file_id is None
    answers = read_lines(client, done.output_file_id)
    assert _once(answers) == Counter(f"req-{i}" for i in range(30))
    for answer in answers:
        assert answer["id"].startswith("batch_req_") and answer["error"] is None
        assert answer["response"]["status_code"] == 200
        body = answer["response"]["body"]
        assert body["object"] == "chat.completion" and body["model"] == model
        assert body["choices"][0]["finish_reason"] == "length"
        assert body["usage"]["completion_tokens"] == 4
    output = client.files.retrieve(done.output_file_id)
    assert output.purpose == "batch_output" and output.bytes > 0
    assert done.id in [b.id for b in client.batches.list(limit=100)]


def test_each_line_runs_as_a_job_of_class_batch(client, spool, pg):
    from jobs.models import BatchLine

    batch = wait(client, run(client, [chat_line("only", OFFLINE, max_completion_tokens=2)]).id)
    assert batch.status == "completed"
    line = BatchLine.objects.select_related("job").get(batch_id=batch.id.removeprefix("batch_"))
    assert line.job is not None
    assert line.job.options["priority"] == "batch" and line.job.options["batch"] == batch.id


def test_the_legacy_completions_and_responses_endpoints_batch_too(client, engine_for):
    model = engine_for("fake")
    text = [
        {"custom_id": f"t{i}", "method": "POST", "url": "/v1/completions",
         "body": {"model": model, "prompt": "Once", "max_tokens": 3}}
        for i in range(3)
    ]  # fmt: skip
    responses = [
        {"custom_id": f"r{i}", "method": "POST", "url": "/v1/responses",
         "body": {"model": model, "input": "Hi", "max_output_tokens": 3}}
        for i in range(3)
    ]  # fmt: skip
    text_batch = run(client, text, endpoint="/v1/completions")
    responses_batch = run(client, responses, endpoint="/v1/responses")

    for batch, kind in ((text_batch, "text_completion"), (responses_batch, "response")):
        done = wait(client, batch.id)
        assert done.status == "completed", done.errors
        answers = read_lines(client, done.output_file_id)
        assert len(answers) == 3
        assert {a["response"]["body"]["object"] for a in answers} == {kind}


def test_a_line_its_endpoint_refuses_goes_to_the_error_file_with_the_endpoint_s_answer(client, engine_for):
    model = engine_for("fake")
    items = [
        chat_line("good", model, max_completion_tokens=2),
        chat_line("bad", model, temperature=7),
        chat_line("streamed", model, stream=True),
    ]
    done = wait(client, run(client, items).id)

    assert done.status == "completed"
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (1, 2)
    assert [a["custom_id"] for a in read_lines(client, done.output_file_id)] == ["good"]
    errors = {e["custom_id"]: e for e in read_lines(client, done.error_file_id)}
    assert set(errors) == {"bad", "streamed"}
    assert errors["bad"]["response"]["status_code"] == 400
    assert errors["bad"]["response"]["body"]["error"]["param"] == "temperature"
    assert errors["streamed"]["response"]["body"]["error"]["param"] == "stream"


def test_a_file_with_bad_lines_fails_validation_naming_each_line(client, engine_for):
    model = engine_for("fake")
    items = [
        chat_line("a", model),
        b"{not json",
        chat_line("a", model),  # duplicate custom_id
        {**chat_line("c", model), "url": "/v1/embeddings"},
        {**chat_line("d", model), "method": "GET"},
        chat_line("e", "no-such-model"),
        {"method": "POST", "url": "/v1/chat/completions", "body": {"model": model}},
    ]
    done = wait(client, run(client, items).id)

    assert done.status == "failed" and done.failed_at
    assert done.errors is not None
    found = [(e.code, e.line) for e in done.errors.data or []]
    assert found == [
        ("invalid_json_line", 2),
        ("duplicate_custom_id", 3),
        ("invalid_url", 4),
        ("invalid_method", 5),
        ("model_not_found", 6),
        ("missing_required_parameter", 7),
    ]
    assert done.output_file_id is None and done.error_file_id is None


def test_an_empty_file_fails_validation(client):
    done = wait(client, run(client, [b"", b"  "]).id)
    assert done.status == "failed"
    assert [e.code for e in done.errors.data] == ["empty_file"]  # type: ignore[union-attr]


def test_a_cancelled_batch_keeps_what_finished_and_reports_the_rest_cancelled(client, spool):
    # Slow lines (the offline engine at 150 tokens/s, 300 tokens each): the cancel comes first.
    items = [chat_line(f"c{i}", OFFLINE, max_completion_tokens=300, logit_bias=NO_EOT) for i in range(40)]
    batch = run(client, items)
    wait(client, batch.id, until={"in_progress"})
    with pytest.raises(openai.BadRequestError) as in_use:
        client.files.delete(batch.input_file_id)
    assert in_use.value.code == "file_in_use"

    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in {"cancelling", "cancelled"}
    done = wait(client, batch.id)

    assert done.status == "cancelled" and done.cancelling_at and done.cancelled_at
    answers, errors = read_lines(client, done.output_file_id), read_lines(client, done.error_file_id)
    assert _once(answers + errors) == Counter(f"c{i}" for i in range(40))
    assert errors and {e["error"]["code"] for e in errors} == {"batch_cancelled"}
    assert done.request_counts is not None
    assert done.request_counts.completed == len(answers)
    assert done.request_counts.failed == len(errors)


def test_files_are_the_owner_s_and_go_when_deleted(client, spool):
    file_id = upload(client, [chat_line("x", OFFLINE)], name="mine.jsonl")
    described = client.files.retrieve(file_id)
    assert (described.filename, described.purpose, described.object) == ("mine.jsonl", "batch", "file")
    assert client.files.content(file_id).text.strip().startswith('{"custom_id": "x"')
    assert file_id in [f.id for f in client.files.list(purpose="batch")]

    bob = openai_helpers.client(spool, spool.bob)
    with pytest.raises(openai.NotFoundError):
        bob.files.retrieve(file_id)
    with pytest.raises(openai.NotFoundError):
        bob.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h")

    assert client.files.delete(file_id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.content(file_id)


def test_uploads_and_batches_are_checked_as_openai_checks_them(client):
    with pytest.raises(openai.BadRequestError) as purpose:
        client.files.create(file=("x.jsonl", io.BytesIO(b"{}\n")), purpose="fine-tune")
    assert purpose.value.body["param"] == "purpose"  # type: ignore[index]
    file_id = upload(client, [chat_line("x", OFFLINE)])
    with pytest.raises(openai.BadRequestError) as endpoint:
        client.batches.create(input_file_id=file_id, endpoint="/v1/moderations", completion_window="24h")  # type: ignore[arg-type]
    assert endpoint.value.body["param"] == "endpoint"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as window:
        client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="1h")  # type: ignore[arg-type]
    assert window.value.body["param"] == "completion_window"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_" + "0" * 32)


def test_the_native_api_and_the_client_package_list_a_batchs_jobs(client, spool, pg):
    from spool_client import Spool, SpoolError

    from jobs.models import BatchLine

    items = [chat_line(f"n{i}", OFFLINE, max_completion_tokens=2) for i in range(5)]
    batch = wait(client, run(client, items).id)
    assert batch.status == "completed"
    expected = {
        str(job_id)
        for job_id in BatchLine.objects.filter(batch_id=batch.id.removeprefix("batch_")).values_list(
            "job_id", flat=True
        )
    }
    assert len(expected) == 5
    client.chat.completions.create(model=OFFLINE, messages=[{"role": "user", "content": "not a line"}])

    with Spool(spool.base_url, spool.alice.secret_key) as native:
        first = native.jobs(batch=batch.id, limit=2)
        assert len(first["data"]) == 2 and first["has_more"]
        second = native.jobs(batch=batch.id, limit=2, after=first["last_id"])
        assert not {j["id"] for j in first["data"]} & {j["id"] for j in second["data"]}
        listed = list(native.iter_jobs(batch=batch.id))
        assert {job["id"] for job in listed} == expected
        assert all(job["batch"] == batch.id and job["priority"] == "batch" for job in listed)
        assert all(job["status"] == "succeeded" and job["result"] for job in listed)
        assert native.jobs(batch=batch.id, status="failed")["data"] == []
        every = {job["id"] for job in native.iter_jobs()}
        assert expected < every  # the chat completion above is a job too, outside the batch

    with Spool(spool.base_url, spool.bob.secret_key) as other, pytest.raises(SpoolError) as refused:
        other.jobs(batch=batch.id)
    assert refused.value.status_code == 404 and refused.value.code == "batch_not_found"


def _embedding_line(custom_id: str, model: str, **body) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": model, **body},
    }


def test_an_embeddings_batch_answers_each_line_as_the_endpoint_does(client):
    asked = {
        "one": {"input": "The king rode out."},
        "two": {"input": ["The queen stayed home.", "A ship sailed."], "dimensions": 16},
        "b64": {"input": "Tell me of the king.", "dimensions": 8, "encoding_format": "base64"},
        "bad": {"input": "x", "dimensions": 0},
    }
    items = [_embedding_line(custom_id, OFFLINE, **body) for custom_id, body in asked.items()]
    batch = wait(client, run(client, items, endpoint="/v1/embeddings").id)

    assert batch.status == "completed", batch.errors
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (3, 1)
    answers = {line["custom_id"]: line for line in read_lines(client, batch.output_file_id)}
    assert set(answers) == {"one", "two", "b64"}
    for custom_id, line in answers.items():
        assert line["error"] is None and line["response"]["status_code"] == 200
        # The SDK asks for base64 unless told: a line that names no format gets floats.
        body = {"encoding_format": "float", **asked[custom_id]}
        direct = client.embeddings.with_raw_response.create(model=OFFLINE, **body).http_response
        assert line["response"]["body"] == direct.json()  # the same numbers the endpoint answers
    assert [len(e["embedding"]) for e in answers["two"]["response"]["body"]["data"]] == [16, 16]
    assert isinstance(answers["b64"]["response"]["body"]["data"][0]["embedding"], str)
    (refused,) = read_lines(client, batch.error_file_id)
    assert refused["custom_id"] == "bad" and refused["response"]["status_code"] == 400
    assert refused["response"]["body"]["error"]["param"] == "dimensions"


def test_embeddings_lines_keep_to_their_engines_limit(client, upstream, pg):
    import time

    import httpx

    from jobs import services
    from jobs.models import Engine

    # An upstream that embeds 2 requests at once, each taking 0.1 s, and answers 429 to a third.
    model = f"fake?dims=6&ttfb=0.1&max_concurrency=2&run={time.monotonic_ns()}"
    name = f"embed-two-{time.monotonic_ns()}"
    services.engine_upsert(
        name=name, kind="openai", config={"base_url": upstream, "model": "fake", "embedding_model": model}
    )
    Engine.objects.filter(name=name).update(max_concurrency=2)
    items = [_embedding_line(f"e{i}", name, input=f"text {i}") for i in range(12)]

    batch = wait(client, run(client, items, endpoint="/v1/embeddings").id)

    assert batch.status == "completed", batch.errors
    answers = read_lines(client, batch.output_file_id)
    assert _once(answers) == Counter(f"e{i}" for i in range(12))
    assert all(len(a["response"]["body"]["data"][0]["embedding"]) == 6 for a in answers)
    seen = httpx.get(f"{upstream}/_stats").json()["models"][model]
    assert seen["max_in_flight"] == 2 and seen["rejected_429"] == 0


def test_files_and_output_files_expire_as_their_policies_say(client):
    import io

    from tests.e2e.batch_helpers import jsonl

    items = [chat_line("x", OFFLINE, max_completion_tokens=2)]
    default = client.files.create(file=("in.jsonl", io.BytesIO(jsonl(items))), purpose="batch")
    asked = client.files.create(
        file=("in.jsonl", io.BytesIO(jsonl(items))),
        purpose="batch",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert default.expires_at is not None and default.expires_at - default.created_at == 30 * 86400
    assert asked.expires_at is not None and asked.expires_at - asked.created_at == 3600
    with pytest.raises(openai.BadRequestError) as refused:
        client.files.create(
            file=("in.jsonl", io.BytesIO(jsonl(items))),
            purpose="batch",
            expires_after={"anchor": "created_at", "seconds": 60},
        )
    assert refused.value.status_code == 400 and "seconds" in (refused.value.param or "")

    batch = client.batches.create(
        input_file_id=asked.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        output_expires_after={"anchor": "created_at", "seconds": 7200},
    )
    done = wait(client, batch.id)
    assert done.status == "completed" and done.output_file_id is not None
    output = client.files.retrieve(done.output_file_id)
    assert output.expires_at is not None and output.expires_at - output.created_at == 7200
