"""Issue 3 end to end: upstream engines (OpenAI-compatible servers) through a real worker and the
SEMOSS face, against the fake upstream.

One fakeupstream runs for the module. Each test registers an `openai` engine row pointing at it;
the engine's model string picks the fake's scenario (`replay:seed000`, `text-tools`, ...) and,
with `key=...`, names the requests the test reads back from the fake's record. The fake demands
the module's API key, so every job that succeeds has sent it. Faults and engine management are in
test_engines_semoss_operations.py, which shares this module's fixtures.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from ai_server import ModelEngine, ServerClient

import fakeupstream
from fakeupstream import scenarios
from tests.e2e.helpers import Frontend, messages_of, text_of
from tests.support import WEATHER_TOOL

pytestmark = pytest.mark.e2e

API_KEY = "sk-e2e-" + secrets.token_hex(12)
LOOKUP_TOOL = {
    "type": "function",
    "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"query": {}}}},
}


def new_key() -> str:
    """A fault/record key no other request of this run shares."""
    return uuid.uuid4().hex[:16]


@dataclass
class Upstream:
    """The module's fake upstream, and engine rows pointing at it."""

    base_url: str
    db_blocker: Any

    def engine(self, name: str, model: str, *, secret: str = API_KEY, **config: Any) -> str:
        from jobs import services

        config = {
            "base_url": self.base_url,
            "model": model,
            "read_timeout": 5,
            "retry_backoff": 0.05,
            **config,
        }
        with self.db_blocker.unblock():
            row = services.engine_upsert(name=name, kind="openai", config=config, secret=secret)
        return str(row.pk)

    def requests(self, key: str) -> list[dict[str, Any]]:
        return fakeupstream.recorded(self.base_url, key)

    def request(self, key: str) -> dict[str, Any]:
        """The one request recorded under key."""
        records = self.requests(key)
        assert len(records) == 1, records
        return records[0]


@pytest.fixture(scope="module")
def upstream(spool, django_db_blocker) -> Upstream:
    with fakeupstream.running(port=0, api_key=API_KEY) as base_url:
        yield Upstream(base_url, django_db_blocker)


@pytest.fixture
def alice(spool) -> Frontend:
    return Frontend(spool, spool.alice)


@pytest.fixture
def sdk(spool) -> Callable[[str], ModelEngine]:
    """ModelEngine factory of the public, unmodified ai-server-sdk, logged in as alice."""
    ServerClient(base=spool.semoss, access_key=spool.alice.access_key, secret_key=spool.alice.secret_key)
    return lambda engine_id: ModelEngine(engine_id=engine_id)


def transcript(name: str) -> tuple[str, dict[int, dict[str, Any]], dict[str, Any] | None]:
    """(content, tool calls by index with their argument fragments, usage) of a replay."""
    content: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    usage = None
    for payload in scenarios.replay(name):
        if payload == "[DONE]":
            continue
        chunk = json.loads(payload)
        usage = chunk.get("usage") or usage
        for choice in chunk["choices"]:
            delta = choice["delta"]
            content.append(delta.get("content") or "")
            for fragment in delta.get("tool_calls") or []:
                call = calls.setdefault(fragment["index"], {"id": "", "name": "", "fragments": []})
                function = fragment.get("function") or {}
                call["id"] = call["id"] or fragment.get("id", "")
                call["name"] = call["name"] or function.get("name", "")
                call["fragments"].append(function.get("arguments", ""))
    return "".join(content), calls, usage


def semoss_calls(messages: list[dict[str, Any]]) -> dict[int, dict[str, list[str]]]:
    """Every SEMOSS tool fragment, grouped by index, each field in arrival order."""
    calls: dict[int, dict[str, list[str]]] = {}
    for message in messages:
        data = message["data"]
        if message["stream_type"] != "tool" or "index" not in data:
            continue
        call = calls.setdefault(data["index"], {"ids": [], "types": [], "names": [], "fragments": []})
        function = data.get("function", {})
        for field, value in (
            ("ids", data.get("id")),
            ("types", data.get("type")),
            ("names", function.get("name")),
            ("fragments", function.get("arguments")),
        ):
            if value is not None:
                call[field].append(value)
    return calls


def run(alice: Frontend, engine_id: str, command: str, params: dict[str, Any] | None = None):
    """Submit with runPixelAsync and poll to the end: (job id, every message, every poll)."""
    job_id = alice.submit(engine_id, command, params)
    polls = alice.stream(job_id)
    return job_id, messages_of(polls), polls


# -- tool calls on the SEMOSS face --------------------------------------------------------------


def test_seed_000s_tool_call_reaches_the_frontend_as_the_semoss_tool_fragments(spool, upstream, alice):
    engine_id = upstream.engine("up-seed000", "replay:seed000")
    job_id, messages, polls = run(
        alice, engine_id, "What is the weather like in Boston?", {"tools": [WEATHER_TOOL]}
    )
    _, calls, _ = transcript("seed000")
    arguments = [f for f in calls[0]["fragments"] if f]
    assert [m["data"] for m in messages[:-2]] == [
        {"index": 0, "id": "call_telkvFkERZ3MW3eLzHsVrRhl"},
        {"index": 0, "type": "function"},
        {"index": 0, "function": {"name": "get_current_weather"}},
        *({"index": 0, "function": {"arguments": a}} for a in arguments),
    ]
    assert {m["stream_type"] for m in messages[:-2]} == {"tool"}
    assert "".join(arguments) == "".join(calls[0]["fragments"]) == '{\n  "location": "Boston"\n}'
    assert messages[-2]["stream_type"] == "usage"
    assert messages[-1] == {"stream_type": "tool", "data": {"finish_reason": "tool_calls"}}
    assert polls[-1]["status"] == "ProgressComplete"
    output = alice.post("/engine/result", jobId=job_id)["pixelReturn"][0]["output"]
    assert output["messageType"] == "TOOL"


def test_ask_returns_a_tool_message_with_the_calls_and_the_room_keeps_them(spool, upstream, sdk):
    engine_id = upstream.engine("up-seed000", "replay:seed000")
    model = sdk(engine_id)
    out = model.ask(command="What is the weather like in Boston?", param_dict={"tools": [WEATHER_TOOL]})
    call = {
        "id": "call_telkvFkERZ3MW3eLzHsVrRhl",
        "name": "get_current_weather",
        "arguments": '{\n  "location": "Boston"\n}',
    }
    assert out["messageType"] == "TOOL"
    assert out["response"] == [call]
    history = model.get_conversation_history(insight_id=out["roomId"])
    assert history[-1]["MESSAGE_TYPE"] == "RESPONSE" and history[-1]["TOOL_CALLS"] == [call]


def test_parallel_calls_after_content_arrive_by_index_with_nothing_dropped_or_repeated(
    spool, upstream, alice
):
    engine_id = upstream.engine("up-parallel", "replay:parallel")
    job_id, messages, _ = run(alice, engine_id, "Weather in Boston and Tokyo?", {"tools": [WEATHER_TOOL]})
    content, calls, usage = transcript("parallel")
    assert text_of(messages) == content == "I'll check both cities."
    kinds = [m["stream_type"] for m in messages]
    assert max(i for i, k in enumerate(kinds) if k == "content") < kinds.index("tool")
    assert semoss_calls(messages) == {
        index: {
            "ids": [call["id"]],
            "types": ["function"],
            "names": [call["name"]],
            "fragments": [f for f in call["fragments"] if f],
        }
        for index, call in calls.items()
    }
    assert len(calls) == 2
    assert [m for m in messages if m["stream_type"] == "usage"] == [
        {"stream_type": "usage", "data": {"input_tokens": usage["prompt_tokens"], "output_tokens": 49}}
    ]
    assert messages[-1] == {"stream_type": "tool", "data": {"finish_reason": "tool_calls"}}
    output = alice.post("/engine/result", jobId=job_id)["pixelReturn"][0]["output"]
    assert [json.loads(c["arguments"])["location"] for c in output["response"]] == ["Boston, MA", "Tōkyo"]


def test_text_tools_turn_markup_into_calls_and_describe_the_tools_in_the_prompt(spool, upstream, alice):
    key = new_key()
    engine_id = upstream.engine("up-text-tools", f"text-tools?calls=2&key={key}", text_tools=True)
    _, messages, polls = run(alice, engine_id, "Weather in Boston and Tokyo?", {"tools": [WEATHER_TOOL]})
    contents = [m["data"]["content"] for m in messages if m["stream_type"] == "content"]
    assert not any("<tool_call" in c or "</" in c for c in contents)
    assert text_of(messages).strip() == scenarios.TEXT_TOOLS_PREFIX
    calls = semoss_calls(messages)
    assert [(c["names"], json.loads("".join(c["fragments"]))) for _, c in sorted(calls.items())] == [
        ([name], arguments) for name, arguments in scenarios.TEXT_TOOL_CALLS[:2]
    ]
    assert all(len(c["ids"]) == 1 and c["ids"][0].startswith("call_") for c in calls.values())
    assert messages[-1] == {"stream_type": "tool", "data": {"finish_reason": "tool_calls"}}
    assert polls[-1]["status"] == "ProgressComplete"

    body = upstream.request(key)["body"]
    assert "tools" not in body and "tool_choice" not in body
    system = body["messages"][0]
    assert system["role"] == "system"
    assert "<tools>" in system["content"] and WEATHER_TOOL["function"]["description"] in system["content"]
    assert body["messages"][-1] == {"role": "user", "content": "Weather in Boston and Tokyo?"}


# -- what reaches the upstream ------------------------------------------------------------------


def test_tools_tool_choice_and_sampling_parameters_reach_the_upstream_as_sent(spool, upstream, alice):
    key = new_key()
    model = f"fake?tokens=3&key={key}"
    engine_id = upstream.engine("up-params", model)
    tool_choice = {"type": "function", "function": {"name": "get_current_weather"}}
    params = {
        "tools": [WEATHER_TOOL, LOOKUP_TOOL],
        "tool_choice": tool_choice,
        "parallel_tool_calls": False,
        "temperature": 0.3,
        "top_p": 0.9,
        "seed": 42,
        "stop": ["\n\n", "END"],
        "max_completion_tokens": 7,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
        "logit_bias": {"50256": -100},
        "user": "alice-e2e",
        "response_format": {"type": "text"},
    }
    _, messages, _ = run(alice, engine_id, "Say three words.", params)
    assert messages[-1]["data"] == {"finish_reason": "stop"}
    assert upstream.request(key)["body"] == {
        "model": model,
        "messages": [{"role": "user", "content": "Say three words."}],
        "tools": [WEATHER_TOOL, LOOKUP_TOOL],
        "tool_choice": tool_choice,
        "parallel_tool_calls": False,
        "temperature": 0.3,
        "top_p": 0.9,
        "seed": 42,
        "stop": ["\n\n", "END"],
        "max_tokens": 7,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
        "logit_bias": {"50256": -100.0},
        "user": "alice-e2e",
        "response_format": {"type": "text"},
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_the_api_key_goes_as_a_bearer_token_and_extra_headers_are_sent(spool, upstream, alice):
    key = new_key()
    engine_id = upstream.engine("up-headers", f"fake?tokens=2&key={key}", headers={"X-Team": "spool-e2e"})
    _, messages, _ = run(alice, engine_id, "hello")
    assert messages[-1]["data"] == {"finish_reason": "stop"}
    headers = upstream.request(key)["headers"]
    assert headers["authorization"] == f"Bearer {API_KEY}"
    assert headers["x-team"] == "spool-e2e"


def tool_turn(call: dict[str, str]) -> list[dict[str, Any]]:
    """A conversation after the model called `call` and the client ran it."""
    return [
        {"role": "user", "content": "What is the weather like in Boston?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call["id"], "content": '{"temperature": 22, "unit": "celsius"}'},
    ]


def test_tool_results_fed_back_in_full_prompt_reach_the_model(spool, upstream, sdk):
    first = sdk(upstream.engine("up-seed000", "replay:seed000")).ask(
        command="What is the weather like in Boston?", param_dict={"tools": [WEATHER_TOOL]}
    )
    assert first["messageType"] == "TOOL"
    key = new_key()
    answer = sdk(upstream.engine("up-answer", f"fake?tokens=4&key={key}"))
    conversation = tool_turn(first["response"][0])
    second = answer.ask(param_dict={"full_prompt": conversation, "tools": [WEATHER_TOOL]})
    assert second["messageType"] == "CHAT" and second["response"] == "Spool streams every token"
    body = upstream.request(key)["body"]
    assert body["messages"] == conversation
    assert body["tools"] == [WEATHER_TOOL]


def test_text_tools_write_fed_back_calls_and_results_into_the_prompt(spool, upstream, sdk):
    key = new_key()
    model = sdk(upstream.engine("up-text-tools-answer", f"fake?tokens=3&key={key}", text_tools=True))
    call = {"id": "call_abc", "name": "get_current_weather", "arguments": '{"location": "Boston"}'}
    out = model.ask(param_dict={"full_prompt": tool_turn(call), "tools": [WEATHER_TOOL]})
    assert out["messageType"] == "CHAT"
    sent = upstream.request(key)["body"]["messages"]
    assert {m["role"] for m in sent} <= {"system", "user", "assistant"}, "no role the server may not know"
    assistant = next(m for m in sent if m["role"] == "assistant")
    assert "<tool_call>" in assistant["content"] and "Boston" in assistant["content"]
    result = sent[-1]["content"]
    assert result.startswith("<tool_response") and result.endswith("</tool_response>")
    assert "call_abc" in result and '{"temperature": 22, "unit": "celsius"}' in result


# -- thinking, usage, choices, logprobs ---------------------------------------------------------


def test_reasoning_streams_as_thinking_messages_and_the_upstream_usage_passes_through(
    spool, upstream, alice, pg
):
    from jobs.models import Job

    key = new_key()
    engine_id = upstream.engine("up-reasoning", f"reasoning?tokens=5&key={key}")
    job_id, messages, _ = run(alice, engine_id, "Think, then answer.")
    thinking = [m["data"]["thinking"] for m in messages if m["stream_type"] == "thinking"]
    assert len(thinking) > 1 and "".join(thinking) == scenarios.REASONING
    kinds = [m["stream_type"] for m in messages]
    assert max(i for i, k in enumerate(kinds) if k == "thinking") < kinds.index("content")
    assert text_of(messages) == "Spool streams every token of"
    usage = [m["data"] for m in messages if m["stream_type"] == "usage"]
    prompt = scenarios.prompt_tokens(upstream.request(key)["body"]["messages"])
    assert usage == [{"input_tokens": prompt, "output_tokens": len(thinking) + 5}]
    job = Job.objects.get(pk=job_id)
    assert job.result["choices"][0]["thinking"] == scenarios.REASONING
    assert "estimated" not in job.usage


def test_usage_is_counted_and_marked_estimated_when_the_upstream_sends_none(spool, upstream, alice, pg):
    from jobs.models import Job

    key = new_key()
    engine_id = upstream.engine("up-no-usage", f"fake?tokens=6&usage=0&key={key}")
    job_id, messages, _ = run(alice, engine_id, "count yourself")
    assert upstream.request(key)["body"]["stream_options"] == {"include_usage": True}
    usage = [m["data"] for m in messages if m["stream_type"] == "usage"]
    assert len(usage) == 1 and usage[0]["input_tokens"] > 0 and usage[0]["output_tokens"] == 6
    assert Job.objects.get(pk=job_id).usage == {**usage[0], "estimated": True}


def test_n_choices_stream_side_by_side_and_logprobs_are_kept(spool, upstream, alice, pg):
    from jobs.models import Job

    key = new_key()
    engine_id = upstream.engine("up-choices", f"fake?tokens=4&key={key}")
    params = {"n": 2, "logprobs": True, "top_logprobs": 2}
    job_id, messages, _ = run(alice, engine_id, "two ways", params)
    texts = ["", ""]
    for m in messages:
        if m["stream_type"] == "content" and "content" in m["data"]:
            texts[m["data"].get("choice", 0)] += m["data"]["content"]
    assert texts[0] == "Spool streams every token" and texts[1] != texts[0] and texts[1]
    assert messages[-1] == {"stream_type": "content", "data": {"finish_reason": "stop"}}
    body = upstream.request(key)["body"]
    assert (body["n"], body["logprobs"], body["top_logprobs"]) == (2, True, 2)

    job = Job.objects.get(pk=job_id)
    assert [c["content"] for c in job.result["choices"]] == texts
    content_chunks = [c for c in job.chunks if c["type"] == "content"]
    assert len(content_chunks) == 8
    for chunk in content_chunks:
        [entry] = chunk["logprobs"]
        assert entry["token"] == chunk["data"]["content"] and len(entry["top_logprobs"]) == 2
    output = alice.post("/engine/result", jobId=job_id)["pixelReturn"][0]["output"]
    assert output["choices"] == texts
