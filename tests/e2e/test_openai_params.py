"""Every parameter of seed 004's list through the openai SDK: accepted ones work, bad values get
OpenAI's 400 with the right `param` and `code`, and an engine that cannot honour one says so."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.e2e.openai_helpers import NO_EOT, OFFLINE, client
from tests.support import WEATHER_TOOL

pytestmark = pytest.mark.e2e

HI = [{"role": "user", "content": "Speak of the sea."}]

# (what to send on top of model + messages, expected param, expected code)
INVALID: list[tuple[dict[str, Any], str, str]] = [
    ({"temperature": 2.5}, "temperature", "decimal_above_max_value"),
    ({"temperature": "hot"}, "temperature", "invalid_type"),
    ({"top_p": -0.1}, "top_p", "decimal_below_min_value"),
    ({"n": 0}, "n", "integer_below_min_value"),
    ({"presence_penalty": 3}, "presence_penalty", "decimal_above_max_value"),
    ({"frequency_penalty": -3}, "frequency_penalty", "decimal_below_min_value"),
    ({"max_completion_tokens": 0}, "max_completion_tokens", "integer_below_min_value"),
    ({"max_tokens": 5, "max_completion_tokens": 5}, "max_tokens", "invalid_parameter_combination"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "array_above_max_length"),
    ({"seed": 1.5}, "seed", "invalid_type"),
    ({"logit_bias": {"12": 101}}, "logit_bias", "invalid_value"),
    ({"logit_bias": {"king": 1}}, "logit_bias", "invalid_value"),
    ({"top_logprobs": 2}, "top_logprobs", "invalid_value"),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs", "integer_above_max_value"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "object_above_max_properties"),
    ({"metadata": {"k" * 65: "v"}}, "metadata", "invalid_value"),
    ({"metadata": {"k": "v" * 513}}, "metadata.k", "string_above_max_length"),
    ({"metadata": {"k": 1}}, "metadata.k", "invalid_type"),
    ({"store": "yes"}, "store", "invalid_type"),
    ({"stream_options": {"include_usage": True}}, "stream_options", "invalid_value"),
    ({"service_tier": "turbo"}, "service_tier", "invalid_value"),
    ({"modalities": ["text", "audio"]}, "modalities", "unsupported_value"),
    ({"modalities": ["video"]}, "modalities[0]", "invalid_value"),
    ({"audio": {"voice": "alloy", "format": "mp3"}}, "audio", "unsupported_parameter"),
    ({"tool_choice": "auto"}, "tool_choice", "invalid_value"),
    ({"parallel_tool_calls": False}, "parallel_tool_calls", "invalid_value"),
    ({"tools": [{"type": "function"}]}, "tools[0].function", "missing_required_parameter"),
    ({"tools": [WEATHER_TOOL], "tool_choice": "sometimes"}, "tool_choice", "invalid_value"),
    ({"response_format": {"type": "yaml"}}, "response_format.type", "invalid_value"),
    ({"user": 7}, "user", "invalid_type"),
    ({"messages": []}, "messages", "empty_array"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role", "invalid_value"),
    ({"messages": [{"role": "user"}]}, "messages[0].content", "missing_required_parameter"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content", "invalid_type"),
    ({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "messages[0].content[0].type", "invalid_value"),
    ({"messages": [*HI, {"role": "tool", "content": "42", "tool_call_id": "call_1"}]},
     "messages[1].role", "invalid_value"),
    ({"messages": [*HI, {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                                                              "function": {"name": "f", "arguments": "{}"}}]},
                   {"role": "tool", "content": "42"}]},
     "messages[2].tool_call_id", "missing_required_parameter"),
    ({"reasoning_effort": "high"}, "reasoning_effort", "unknown_parameter"),
]  # fmt: skip

# What the offline engine cannot do: a 400 naming the parameter, never silently ignored.
UNHONOURED: list[tuple[dict[str, Any], str]] = [
    ({"tools": [WEATHER_TOOL]}, "tools"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"logit_bias": {"99999999": 5}}, "logit_bias"),
    (
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                                   {"type": "image_url", "image_url": {"url": "http://x/a.png"}}]}]},
        "messages[0].content[1]",
    ),
]  # fmt: skip


def _create(spool, extra: dict[str, Any]) -> Any:
    body = dict(extra) if "max_completion_tokens" in extra else {"max_tokens": 3, **extra}
    messages = body.pop("messages", HI)
    # extra_body sends what the SDK's own types would refuse or leave out, exactly as given.
    return client(spool).chat.completions.create(model=OFFLINE, messages=messages, extra_body=body)


@pytest.mark.parametrize(("extra", "param", "code"), INVALID, ids=[f"{p}:{c}" for _, p, c in INVALID])
def test_an_invalid_parameter_gets_openais_400_with_its_param_and_code(spool, extra, param, code):
    with pytest.raises(openai.BadRequestError) as caught:
        _create(spool, extra)
    error = caught.value
    assert error.status_code == 400
    assert (error.param, error.code) == (param, code)
    assert error.body["type"] == "invalid_request_error" and error.body["message"]


@pytest.mark.parametrize(("extra", "param"), UNHONOURED, ids=[p for _, p in UNHONOURED])
def test_a_parameter_the_engine_cannot_honour_gets_a_400_naming_it(spool, extra, param):
    with pytest.raises(openai.BadRequestError) as caught:
        _create(spool, extra)
    assert (caught.value.param, caught.value.code) == (param, "unsupported_parameter")
    assert OFFLINE in caught.value.body["message"]


def test_the_parameters_the_offline_engine_honours_are_all_accepted_together(spool):
    done = client(spool).chat.completions.create(
        model=OFFLINE,
        messages=[{"role": "system", "content": "You are a bard."}, *HI],
        temperature=0.7,
        top_p=0.9,
        n=2,
        stop=["\n\n"],
        max_completion_tokens=6,
        presence_penalty=0.5,
        frequency_penalty=0.5,
        seed=1,
        logit_bias=NO_EOT,
        logprobs=True,
        top_logprobs=1,
        response_format={"type": "text"},
        tool_choice=None,
        store=True,
        metadata={"suite": "params"},
        user="user-1",
        safety_identifier="user-1",
        service_tier="auto",
        modalities=["text"],
    )
    assert len(done.choices) == 2
    assert all(len(c.logprobs.content) == 6 and c.finish_reason == "length" for c in done.choices)


def test_the_same_seed_gives_the_same_answer_and_another_seed_another(spool):
    sdk = client(spool)
    ask = dict(model=OFFLINE, messages=HI, max_tokens=12, logit_bias=NO_EOT)
    first = sdk.chat.completions.create(seed=10, **ask).choices[0].message.content
    assert sdk.chat.completions.create(seed=10, **ask).choices[0].message.content == first
    assert sdk.chat.completions.create(seed=99, **ask).choices[0].message.content != first


def test_the_model_may_be_named_by_engine_id(spool):
    done = client(spool).chat.completions.create(model=spool.engine_id, messages=HI, max_tokens=2)
    assert done.model == OFFLINE


def test_an_unknown_model_is_a_404_model_not_found(spool):
    with pytest.raises(openai.NotFoundError) as caught:
        client(spool).chat.completions.create(model="gpt-nope", messages=HI)
    assert caught.value.code == "model_not_found"


def test_a_bad_key_gets_401_in_openais_shape(spool):
    bad = openai.OpenAI(base_url=spool.base_url + "/v1", api_key="sk-not-a-real-key-000", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        bad.chat.completions.create(model=OFFLINE, messages=HI)
    assert caught.value.code == "invalid_api_key"
    assert "sk-not-a-real-key" not in caught.value.body["message"], "the key is never echoed in full"
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    missing = httpx.get(f"{spool.base_url}/v1/models")
    assert missing.status_code == 401 and set(missing.json()["error"]) == {"message", "type", "param", "code"}


def test_a_body_that_is_not_json_is_a_400_in_the_envelope(spool):
    response = httpx.post(
        f"{spool.base_url}/v1/chat/completions",
        content=b"{not json",
        headers={"Authorization": f"Bearer {spool.alice.secret_key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_models_lists_the_active_engines(spool):
    models = client(spool).models.list()
    names = [m.id for m in models]
    assert OFFLINE in names
    assert all(m.object == "model" and m.owned_by == "spool" for m in models)
    assert client(spool).models.retrieve(OFFLINE).id == OFFLINE
