"""/v1/responses with the unmodified openai SDK against a running server and worker: the three
modes (wait, stream, background), resuming a stream from any sequence number (live and after
the Redis log expired), the stream helper, cancel, delete, input items, previous_response_id,
function calling through an upstream that calls tools, incomplete, errors and tenancy."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import openai
import pytest
from django.conf import settings

import fakeupstream
from tests.e2e.openai_helpers import OFFLINE, client

pytestmark = pytest.mark.e2e

FUNCTION_TOOL = {
    "type": "function",
    "name": "get_current_weather",
    "description": "Get the current weather in a given location",
    "parameters": {
        "type": "object",
        "properties": {"location": {"type": "string"}, "unit": {"type": "string"}},
        "required": ["location"],
    },
}


def _words(count: int) -> str:
    return " ".join(f"word{i}" for i in range(count))


def _settled(sdk: openai.OpenAI, response_id: str) -> Any:
    """Poll a background response until it is no longer queued or in progress."""
    while True:
        response = sdk.responses.retrieve(response_id)
        if response.status not in ("queued", "in_progress"):
            return response
        time.sleep(0.05)


def _text_of(events: list[Any]) -> str:
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


def test_a_plain_response_is_a_completed_response_object(spool, engine_for):
    model = engine_for("fake?tokens=12")
    sdk = client(spool)
    response = sdk.responses.create(model=model, input="Tell me of the king.")
    assert response.id.startswith("resp_") and len(response.id) == 37
    assert response.object == "response" and response.status == "completed" and response.model == model
    assert len(response.output_text.split()) == 12
    [item] = response.output
    assert item.type == "message" and item.role == "assistant" and item.status == "completed"
    assert item.content[0].type == "output_text"
    assert response.usage.output_tokens == 12
    assert response.usage.total_tokens == response.usage.input_tokens + 12
    assert response.error is None and response.incomplete_details is None
    assert sdk.responses.retrieve(response.id).model_dump() == response.model_dump()


def test_a_streamed_response_numbers_every_event_and_ends_with_completed(spool, engine_for):
    model = engine_for("fake?tokens=10")
    sdk = client(spool)
    events = list(sdk.responses.create(model=model, input="Speak.", stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[2:4] == ["response.output_item.added", "response.content_part.added"]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert set(kinds[4:-4]) == {"response.output_text.delta"}
    final = events[-1].response
    assert final.status == "completed" and final.output_text == _text_of(events)
    assert sdk.responses.retrieve(final.id).output_text == _text_of(events)
    done = next(e for e in events if e.type == "response.output_text.done")
    assert done.text == _text_of(events)


def test_a_background_response_is_queued_then_polled_to_completed(spool, engine_for):
    model = engine_for("fake?tokens=20&tps=200")
    sdk = client(spool)
    started = sdk.responses.create(model=model, input="Speak.", background=True)
    assert started.status in ("queued", "in_progress") and started.background is True
    done = _settled(sdk, started.id)
    assert done.status == "completed" and len(done.output_text.split()) == 20


def _resume_check(sdk: openai.OpenAI, response_id: str, seen: list[Any]) -> list[Any]:
    n = seen[-1].sequence_number
    rest = list(sdk.responses.retrieve(response_id, stream=True, starting_after=n))
    assert [e.sequence_number for e in seen + rest] == list(range(len(seen) + len(rest)))
    assert rest[-1].type == "response.completed"
    assert _text_of(seen + rest) == sdk.responses.retrieve(response_id).output_text
    return rest


def test_a_background_stream_dropped_midway_resumes_after_the_last_sequence_number(spool, engine_for):
    model = engine_for("fake?tokens=40&tps=100")
    sdk = client(spool)
    stream = sdk.responses.create(model=model, input="Speak.", background=True, stream=True)
    seen = []
    for event in stream:
        seen.append(event)
        if event.type == "response.output_text.delta" and len(seen) >= 8:
            break
    stream.close()  # the connection is dropped with the job still running
    assert seen[0].type == "response.created" and seen[1].type == "response.queued"
    rest = _resume_check(sdk, seen[0].response.id, seen)
    assert len(_text_of(seen + rest).split()) == 40


def _redis_keys(job_id: str) -> list[bytes]:
    from jobs.redis_clients import sync_redis

    return list(sync_redis().scan_iter(f"{settings.SPOOL.redis.prefix}:job:{{{job_id}}}:*"))


def test_a_stream_resumes_from_every_sequence_number_after_the_live_log_expired(spool, engine_for):
    from jobs.redis_clients import sync_redis

    model = engine_for("fake?tokens=15")
    sdk = client(spool)
    raw = sdk.responses.with_raw_response.create(model=model, input="Speak.", background=True, stream=True)
    job_id = raw.headers["x-spool-job-id"]
    everything = list(raw.parse())
    response_id = everything[0].response.id
    assert response_id == "resp_" + uuid.UUID(job_id).hex
    live = [e.model_dump() for e in sdk.responses.retrieve(response_id, stream=True)]
    keys = _redis_keys(job_id)
    assert keys, "the live log should be in Redis before it expires"
    sync_redis().delete(*keys)
    want = [e.model_dump() for e in everything]
    assert live == want
    for n in range(-1, len(everything)):
        got = [e.model_dump() for e in sdk.responses.retrieve(response_id, stream=True, starting_after=n)]
        assert got == want[n + 1 :], n
    assert sdk.responses.retrieve(response_id).output_text == _text_of(everything)


def test_the_stream_helper_gives_the_final_response(spool, engine_for):
    model = engine_for("fake?tokens=9")
    sdk = client(spool)
    with sdk.responses.stream(model=model, input="Speak.") as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert final.status == "completed" and final.output_text == _text_of(events)
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert deltas[-1].snapshot == final.output_text
    assert sdk.responses.retrieve(final.id).output_text == final.output_text


def test_cancel_stops_a_running_background_response_and_twice_is_harmless(spool, engine_for):
    model = engine_for("fake?tokens=2000&tps=20")
    sdk = client(spool)
    stream = sdk.responses.create(model=model, input="Speak.", background=True, stream=True)
    response_id = None
    for event in stream:
        response_id = event.response.id if event.type == "response.created" else response_id
        if event.type == "response.output_text.delta":
            break
    cancelled = sdk.responses.cancel(response_id)
    assert cancelled.status == "cancelled"
    assert sdk.responses.cancel(response_id).status == "cancelled"
    rest = list(stream)
    assert rest[-1].type == "response.failed" and rest[-1].response.status == "cancelled"
    assert sdk.responses.retrieve(response_id).status == "cancelled"


def test_a_deleted_response_is_gone(spool, engine_for):
    sdk = client(spool)
    response = sdk.responses.create(model=engine_for("fake?tokens=3"), input="Hi.")
    sdk.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.input_items.list(response.id)


def test_input_items_are_listed_newest_first_and_paged(spool, engine_for):
    sdk = client(spool)
    given = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "input_text", "text": "First."}]},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "Second."},
    ]
    response = sdk.responses.create(model=engine_for("fake?tokens=3"), input=given)
    items = list(sdk.responses.input_items.list(response.id))
    assert [(i.role, i.content[0].text) for i in items] == [
        ("user", "Second."), ("assistant", "Noted."), ("user", "First."), ("developer", "Be brief.")
    ]  # fmt: skip
    page = sdk.responses.input_items.list(response.id, order="asc", limit=2)
    assert [i.content[0].text for i in page.data] == ["Be brief.", "First."] and page.has_more
    following = sdk.responses.input_items.list(response.id, order="asc", limit=2, after=page.data[-1].id)
    assert [i.content[0].text for i in following.data] == ["Noted.", "Second."]


def test_previous_response_id_carries_the_conversation(spool, engine_for, upstream):
    model = engine_for("echo")
    sdk = client(spool)
    first = sdk.responses.create(model=model, input="the first words", instructions="Be kind.")
    second = sdk.responses.create(model=model, input="the second words", previous_response_id=first.id)
    assert second.previous_response_id == first.id and second.output_text.strip() == "the second words"
    messages = [
        r["body"]["messages"] for r in fakeupstream.recorded(upstream) if r["body"]["model"] == "echo"
    ]
    assert messages[-1] == [
        {"role": "user", "content": "the first words"},
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "the second words"},
    ]
    assert messages[-2][0] == {"role": "system", "content": "Be kind."}


def test_function_calls_come_out_as_function_call_items_and_their_outputs_go_back(
    spool, engine_for, upstream
):
    model = engine_for("replay:parallel")
    sdk = client(spool)
    with sdk.responses.stream(model=model, input="Weather in Boston?", tools=[FUNCTION_TOOL]) as stream:
        events = list(stream)
        streamed = stream.get_final_response()
    plain = sdk.responses.create(model=model, input="Weather in Boston?", tools=[FUNCTION_TOOL])
    calls = [item for item in plain.output if item.type == "function_call"]
    assert len(calls) == 2 and plain.status == "completed"
    assert all(
        call.name == "get_current_weather" and json.loads(call.arguments)["location"] for call in calls
    )
    assert [(c.call_id, c.arguments) for c in streamed.output if c.type == "function_call"] == [
        (c.call_id, c.arguments) for c in calls
    ]
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [e.arguments for e in done] == [c.arguments for c in calls]
    outputs = [{"type": "function_call_output", "call_id": c.call_id, "output": "sunny"} for c in calls]
    sdk.responses.create(model=model, input=outputs, previous_response_id=plain.id, tools=[FUNCTION_TOOL])
    sent = fakeupstream.recorded(upstream)[-1]["body"]
    assert sent["tools"][0]["function"]["name"] == "get_current_weather"
    assistant = sent["messages"][-3]
    assert [c["id"] for c in assistant["tool_calls"]] == [c.call_id for c in calls]
    assert sent["messages"][-2:] == [
        {"role": "tool", "tool_call_id": c.call_id, "content": "sunny"} for c in calls
    ]


def test_max_output_tokens_makes_an_incomplete_response(spool, engine_for):
    model = engine_for("fake?tokens=20")
    sdk = client(spool)
    response = sdk.responses.create(model=model, input="Tell me of the king.", max_output_tokens=3)
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    assert response.usage.output_tokens == 3 and len(response.output_text.split()) == 3
    assert response.output[0].status == "incomplete"
    events = list(sdk.responses.create(model=model, input="Tell me.", max_output_tokens=3, stream=True))
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"


BAD = [
    ({"input": "hi"}, "model"),
    ({"model": OFFLINE}, "input"),
    ({"model": OFFLINE, "input": 3}, "input"),
    ({"model": OFFLINE, "input": []}, "input"),
    ({"model": OFFLINE, "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
    ({"model": OFFLINE, "input": [{"type": "reasoning"}]}, "input[0].type"),
    ({"model": OFFLINE, "input": [{"role": "user", "content": [{"type": "input_image"}]}]},
     "input[0].content[0].type"),
    ({"model": OFFLINE, "input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
    ({"model": OFFLINE, "input": "hi", "temperature": 3}, "temperature"),
    ({"model": OFFLINE, "input": "hi", "top_p": "x"}, "top_p"),
    ({"model": OFFLINE, "input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": OFFLINE, "input": "hi", "background": True, "store": False}, "background"),
    ({"model": OFFLINE, "input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"model": OFFLINE, "input": "hi", "tools": [FUNCTION_TOOL]}, "tools"),
    ({"model": OFFLINE, "input": "hi", "tool_choice": "sometimes"}, "tool_choice"),
    ({"model": OFFLINE, "input": "hi", "text": {"format": {"type": "json_schema"}}}, "text.format.name"),
    ({"model": OFFLINE, "input": "hi", "text": {"format": {"type": "json_object"}}}, "text.format"),
    ({"model": OFFLINE, "input": "hi", "metadata": {"k": 1}}, "metadata.k"),
    ({"model": OFFLINE, "input": "hi", "reasoning": {"effort": "low"}}, "reasoning"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "param"), BAD, ids=[param for _, param in BAD])
def test_every_validation_error_names_its_param(spool, body, param):
    with pytest.raises(openai.BadRequestError) as caught:
        client(spool).post("/responses", cast_to=object, body=body)
    assert caught.value.status_code == 400
    assert caught.value.body["param"] == param, caught.value.body


def test_an_unknown_model_is_a_404(spool):
    with pytest.raises(openai.NotFoundError):
        client(spool).responses.create(model="no-such-model", input="hi")


def test_another_keys_response_is_a_404(spool, engine_for):
    mine = client(spool).responses.create(model=engine_for("fake?tokens=3"), input="Hi.", background=True)
    theirs = client(spool, spool.bob)
    with pytest.raises(openai.NotFoundError):
        theirs.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        theirs.responses.cancel(mine.id)
    with pytest.raises(openai.NotFoundError):
        theirs.responses.delete(mine.id)
    with pytest.raises(openai.NotFoundError):
        theirs.responses.input_items.list(mine.id)
    with pytest.raises(openai.NotFoundError) as caught:
        theirs.responses.create(model=OFFLINE, input="Hi.", previous_response_id=mine.id)
    assert caught.value.body["param"] == "previous_response_id"
    assert _settled(client(spool), mine.id).status == "completed"


def test_the_wire_format_has_event_and_data_lines(spool, engine_for):
    body = {"model": engine_for("fake?tokens=2"), "input": "Hi.", "stream": True}
    headers = {"Authorization": f"Bearer {spool.alice.secret_key}"}
    with httpx.stream("POST", f"{spool.base_url}/v1/responses", json=body, headers=headers, timeout=60) as r:
        text = "".join(r.iter_text())
    assert r.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in text.split("\n\n") if f]
    for number, frame in enumerate(frames):
        kind, data = frame.split("\n")
        payload = json.loads(data.removeprefix("data: "))
        assert kind == f"event: {payload['type']}" and payload["sequence_number"] == number


def test_text_format_reaches_an_upstream_as_its_response_format(spool, engine_for, upstream):
    model = engine_for("fake?tokens=3")
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    fmt = {"type": "json_schema", "name": "place", "schema": schema, "strict": True}
    response = client(spool).responses.create(model=model, input="Where?", text={"format": fmt})
    assert response.text.format.type == "json_schema" and response.text.format.name == "place"
    sent = fakeupstream.recorded(upstream)[-1]["body"]
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "place", "schema": schema, "strict": True},
    }


def test_an_upstream_failure_midway_is_a_failed_response_with_its_error_and_partial_output(spool, engine_for):
    model = engine_for("fake?tokens=20&error_after=4")
    sdk = client(spool)
    events = list(sdk.responses.create(model=model, input="Speak.", stream=True))
    assert events[-1].type == "response.failed"
    failed = events[-1].response
    assert failed.status == "failed" and failed.error.code == "upstream_error" and failed.error.message
    assert failed.output[0].status == "incomplete" and failed.output_text == _text_of(events) != ""
    again = sdk.responses.retrieve(failed.id)
    assert again.status == "failed" and again.output_text == failed.output_text
    waited = sdk.responses.create(model=model, input="Speak.")
    assert waited.status == "failed" and waited.error.code == "upstream_error"


def test_the_stream_helper_resumes_an_existing_response(spool, engine_for):
    model = engine_for("fake?tokens=12&tps=100")
    sdk = client(spool)
    started = sdk.responses.create(model=model, input="Speak.", background=True)
    with sdk.responses.stream(response_id=started.id, starting_after=3) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert events[0].sequence_number == 4
    assert [e.sequence_number for e in events] == list(range(4, 4 + len(events)))
    assert final.status == "completed" and final.output_text == sdk.responses.retrieve(started.id).output_text
