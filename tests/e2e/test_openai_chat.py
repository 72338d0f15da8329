"""POST /v1/chat/completions with the official openai SDK and raw HTTP: both modes, the stream
helper, and OpenAI's wire format exactly."""

from __future__ import annotations

import json
import uuid

import openai
import pytest

from tests.e2e.openai_helpers import (
    NO_EOT,
    OFFLINE,
    client,
    data_events,
    raw_stream,
)
from tests.support import WEATHER_TOOL

pytestmark = pytest.mark.e2e

ASK = [{"role": "user", "content": "Tell me of the king and his daughters."}]


def test_a_non_streamed_completion_is_a_chat_completion_object(spool):
    raw = client(spool).chat.completions.with_raw_response.create(
        model=OFFLINE, messages=ASK, max_completion_tokens=12, seed=3, logit_bias=NO_EOT
    )
    done = raw.parse()
    job_id = raw.headers["x-spool-job-id"]
    assert done.id == "chatcmpl-" + uuid.UUID(job_id).hex
    assert done.object == "chat.completion" and done.model == OFFLINE
    assert done.choices[0].message.role == "assistant"
    assert done.choices[0].message.content
    assert done.choices[0].finish_reason == "length"
    assert done.choices[0].logprobs is None
    assert done.usage.completion_tokens == 12
    assert done.usage.total_tokens == done.usage.prompt_tokens + 12


@pytest.mark.cluster
def test_a_streamed_completion_yields_chunks_that_add_up_to_the_same_answer(spool):
    params = dict(model=OFFLINE, messages=ASK, max_completion_tokens=15, seed=11, logit_bias=NO_EOT)
    sdk = client(spool)
    chunks = list(sdk.chat.completions.create(stream=True, **params))
    plain = sdk.chat.completions.create(**params)
    assert len(chunks) > 3
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == plain.choices[0].message.content
    )
    assert chunks[-1].choices[0].finish_reason == "length"


@pytest.mark.cluster
def test_the_stream_helper_snapshot_equals_the_non_streamed_answer_with_n_2_and_logprobs(spool):
    params = dict(
        model=OFFLINE,
        messages=ASK,
        n=2,
        seed=2,
        # The helper refuses a "length" finish, so the replies end by themselves (this seed's do).
        max_completion_tokens=200,
        logprobs=True,
        top_logprobs=2,
    )
    sdk = client(spool)
    with sdk.chat.completions.stream(**params) as stream:
        events = list(stream)
        streamed = stream.get_final_completion()
    plain = sdk.chat.completions.create(**params)
    assert [c.index for c in streamed.choices] == [0, 1]
    assert any(e.type == "content.delta" for e in events)
    for got, want in zip(streamed.choices, plain.choices, strict=True):
        assert got.message.role == want.message.role == "assistant"
        assert got.message.content == want.message.content
        assert got.finish_reason == want.finish_reason == "stop"
        assert got.logprobs.model_dump() == want.logprobs.model_dump()
        assert "".join(entry.token for entry in want.logprobs.content) == want.message.content
        assert all(len(entry.top_logprobs) == 2 for entry in want.logprobs.content)
    assert streamed.choices[0].message.content != streamed.choices[1].message.content


@pytest.mark.parametrize("scenario", ["replay:seed000", "replay:parallel"])
def test_the_stream_helper_snapshot_equals_the_non_streamed_answer_with_tools(spool, engine_for, scenario):
    model = engine_for(scenario)
    params = dict(
        model=model, messages=[{"role": "user", "content": "Weather in Boston?"}], tools=[WEATHER_TOOL]
    )
    sdk = client(spool)
    with sdk.chat.completions.stream(**params) as stream:
        events = list(stream)
        streamed = stream.get_final_completion()
    plain = sdk.chat.completions.create(**params)
    got, want = streamed.choices[0], plain.choices[0]
    assert got.finish_reason == want.finish_reason == "tool_calls"
    assert got.message.content == want.message.content
    assert [(t.id, t.type, t.function.name, t.function.arguments) for t in got.message.tool_calls] == [
        (t.id, t.type, t.function.name, t.function.arguments) for t in want.message.tool_calls
    ]
    for call in want.message.tool_calls:
        assert json.loads(call.function.arguments)["location"]
    done = [e for e in events if e.type == "tool_calls.function.arguments.done"]
    assert [e.name for e in done] == [t.function.name for t in want.message.tool_calls]


@pytest.mark.cluster
def test_the_wire_format_is_data_only_with_one_id_and_role_once_and_done_last(spool):
    response, lines = raw_stream(
        spool,
        {"model": OFFLINE, "messages": ASK, "n": 3, "seed": 5, "max_tokens": 6, "logit_bias": NO_EOT},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-spool-job-id"]
    assert not [line for line in lines if line.startswith("event:")]
    events = data_events(lines)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert {(c["id"], c["created"], c["model"], c["object"]) for c in chunks} == {
        ("chatcmpl-" + uuid.UUID(response.headers["x-spool-job-id"]).hex, chunks[0]["created"], OFFLINE,
         "chat.completion.chunk")
    }  # fmt: skip
    assert all("usage" not in c for c in chunks), "usage appears only under stream_options.include_usage"
    choices = [choice for c in chunks for choice in c["choices"]]
    first_seen = list(dict.fromkeys(choice["index"] for choice in choices))
    assert first_seen == [0, 1, 2]
    for index in range(3):
        mine = [choice for choice in choices if choice["index"] == index]
        assert "role" in mine[0]["delta"]
        assert all("role" not in choice["delta"] for choice in mine[1:])
        assert all(choice["finish_reason"] is None for choice in mine[:-1])
        assert mine[-1]["finish_reason"] == "length" and mine[-1]["delta"] == {}
        assert all(choice["logprobs"] is None for choice in mine)


def test_tool_call_ids_types_and_names_come_only_in_the_first_fragment(spool, engine_for):
    model = engine_for("replay:parallel")
    _, lines = raw_stream(spool, {"model": model, "messages": ASK, "tools": [WEATHER_TOOL]})
    fragments = [
        call
        for event in data_events(lines)[:-1]
        for choice in event["choices"]
        for call in choice["delta"].get("tool_calls", [])
    ]
    for index in (0, 1):
        mine = [f for f in fragments if f["index"] == index]
        assert mine[0]["id"].startswith("call_") and mine[0]["type"] == "function"
        assert mine[0]["function"]["name"] == "get_current_weather"
        assert all(set(f) == {"index", "function"} and set(f["function"]) == {"arguments"} for f in mine[1:])


def test_include_usage_adds_a_last_chunk_with_empty_choices_and_null_usage_elsewhere(spool):
    _, lines = raw_stream(
        spool,
        {
            "model": OFFLINE,
            "messages": ASK,
            "max_tokens": 5,
            "logit_bias": NO_EOT,
            "stream_options": {"include_usage": True},
        },
    )
    events = data_events(lines)
    assert events[-1] == "[DONE]"
    *body, last = events[:-1]
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 5
    assert last["usage"]["total_tokens"] == last["usage"]["prompt_tokens"] + 5
    assert all(c["usage"] is None and c["choices"] for c in body)


def test_logprobs_come_with_each_content_chunk(spool):
    _, lines = raw_stream(
        spool,
        {
            "model": OFFLINE,
            "messages": ASK,
            "max_tokens": 4,
            "logit_bias": NO_EOT,
            "logprobs": True,
            "top_logprobs": 3,
        },
    )
    content = [
        choice
        for event in data_events(lines)[:-1]
        for choice in event["choices"]
        if choice["delta"].get("content")
    ]
    assert content
    for choice in content:
        assert choice["logprobs"]["refusal"] is None
        entries = choice["logprobs"]["content"]
        assert "".join(e["token"] for e in entries) == choice["delta"]["content"]
        assert all(len(e["top_logprobs"]) == 3 and e["logprob"] <= 0 for e in entries)


def test_an_error_mid_stream_is_an_error_event_then_done(spool, engine_for):
    model = engine_for("fake?tokens=20&error_after=4")
    response, lines = raw_stream(spool, {"model": model, "messages": ASK})
    assert response.status_code == 200
    events = data_events(lines)
    assert events[-1] == "[DONE]"
    assert set(events[-2]) == {"error"}
    assert events[-2]["error"]["code"] == "upstream_error" and events[-2]["error"]["message"]
    assert any(c["choices"][0]["delta"].get("content") for c in events[:-2])
    with pytest.raises(openai.APIError, match="upstream"):
        list(client(spool).chat.completions.create(model=model, messages=ASK, stream=True))


def test_an_error_before_the_first_byte_is_a_plain_http_error(spool, engine_for):
    model = engine_for("fake?fail=400&message=nope")
    response, lines = raw_stream(spool, {"model": model, "messages": ASK})
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-spool-job-id"]
    error = json.loads("".join(lines))["error"]
    assert error["code"] == "upstream_error" and "nope" in error["message"]
    assert error["type"] == "server_error" and error["param"] is None
    with pytest.raises(openai.InternalServerError):
        client(spool).chat.completions.create(model=model, messages=ASK)


def test_a_long_silence_is_filled_with_keep_alive_comments(spool, engine_for):
    model = engine_for("fake?tokens=4&stall_after=2&stall=11")
    _, lines = raw_stream(spool, {"model": model, "messages": ASK})
    assert ": keep-alive" in lines
    assert data_events(lines)[-1] == "[DONE]"
    streamed = client(spool).chat.completions.create(model=model, messages=ASK, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)


def test_service_tier_is_echoed_back_in_both_modes(spool):
    sdk = client(spool)
    done = sdk.chat.completions.create(model=OFFLINE, messages=ASK, max_tokens=2, service_tier="flex")
    assert done.service_tier == "flex"
    chunks = list(
        sdk.chat.completions.create(
            model=OFFLINE, messages=ASK, max_tokens=2, service_tier="flex", stream=True
        )
    )
    assert {c.service_tier for c in chunks} == {"flex"}


def test_a_conversation_with_system_developer_tool_and_content_parts_is_accepted(spool, engine_for):
    model = engine_for("echo")
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer plainly."}]},
        {"role": "user", "content": "What is the weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_current_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "so tell me"}, {"type": "text", "text": " plainly"}],
        },
    ]
    done = client(spool).chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])
    assert done.choices[0].message.content.split() == ["so", "tell", "me", "plainly"]


@pytest.mark.cluster
def test_cancel_ends_a_running_stream_with_a_cancelled_error(spool):
    sdk = client(spool)
    stream = sdk.chat.completions.with_raw_response.create(
        model=OFFLINE, messages=ASK, max_tokens=2000, logit_bias=NO_EOT, stream=True
    )
    completion_id = "chatcmpl-" + uuid.UUID(stream.headers["x-spool-job-id"]).hex
    chunks = stream.parse()
    next(iter(chunks))
    cancelled = sdk.post(f"/chat/completions/{completion_id}/cancel", cast_to=object, body={})
    assert cancelled["id"] == completion_id and cancelled["status"] == "cancelled"
    with pytest.raises(openai.APIError, match="cancelled"):
        for _ in chunks:
            pass
