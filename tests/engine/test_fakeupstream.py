"""The fake upstream speaks OpenAI's wire format and injects the faults it promises."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

import fakeupstream
from fakeupstream import scenarios

SEED = Path(__file__).resolve().parents[2] / "fakeupstream" / "transcripts" / "seed000.sse"
MESSAGES = [{"role": "user", "content": "Say something."}]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with fakeupstream.running(port=0) as url:
        yield url


def unique() -> str:
    return uuid.uuid4().hex


def data_lines(base_url: str, body: dict[str, Any], **kwargs: Any) -> list[str]:
    """The payload of every data line of a stream, in order."""
    body = {"messages": MESSAGES, "stream": True, **body}
    with httpx.stream("POST", f"{base_url}/chat/completions", json=body, timeout=10, **kwargs) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        return [line[len("data: ") :] for line in r.iter_lines() if line.startswith("data: ")]


def chunks(lines: list[str]) -> list[dict[str, Any]]:
    assert lines[-1] == "[DONE]"
    assert "[DONE]" not in lines[:-1]
    return [json.loads(line) for line in lines[:-1]]


def test_every_chunk_shares_one_id_created_and_model_and_role_comes_only_first() -> None:
    with fakeupstream.running() as url:
        parsed = chunks(data_lines(url, {"model": "fake?tokens=5", "n": 2}))
    assert len({(c["id"], c["created"], c["model"]) for c in parsed}) == 1
    assert parsed[0]["object"] == "chat.completion.chunk"
    for choice in (0, 1):
        deltas = [c["choices"][0] for c in parsed if c["choices"][0]["index"] == choice]
        assert [d["delta"].get("role") for d in deltas] == ["assistant"] + [None] * 6
        assert [d["finish_reason"] for d in deltas] == [None] * 6 + ["stop"]
        assert len("".join(d["delta"].get("content") or "" for d in deltas).split()) == 5


def test_a_payload_is_compact_json_with_text_unescaped() -> None:
    body = {"model": "echo", "messages": [{"role": "user", "content": "héllo “quoted” 🙂"}], "logprobs": True}
    for payload in scenarios.script("echo", {}, body).payloads:
        assert payload == json.dumps(json.loads(payload), separators=(",", ":"), ensure_ascii=False)
    assert any("🙂" in payload for payload in scenarios.script("echo", {}, body).payloads)


def test_the_usage_chunk_comes_only_when_asked(base_url: str) -> None:
    plain = chunks(data_lines(base_url, {"model": "fake?tokens=3"}))
    assert all("usage" not in c for c in plain)
    body = {"model": "fake?tokens=3", "stream_options": {"include_usage": True}}
    asked = chunks(data_lines(base_url, body))
    assert asked[-1]["choices"] == []
    assert asked[-1]["usage"]["completion_tokens"] == 3
    assert all("usage" not in c for c in asked[:-1])
    body["model"] = "fake?tokens=3&usage=0"
    assert all("usage" not in c for c in chunks(data_lines(base_url, body)))


def test_max_tokens_cuts_the_text_with_finish_reason_length(base_url: str) -> None:
    parsed = chunks(data_lines(base_url, {"model": "fake?tokens=10", "max_tokens": 4}))
    assert sum(1 for c in parsed if c["choices"][0]["delta"].get("content")) == 4
    assert parsed[-1]["choices"][0]["finish_reason"] == "length"


def test_settings_can_come_from_x_fake_headers_and_the_model_string_wins(base_url: str) -> None:
    headers = {"X-Fake-Tokens": "2"}
    by_header = chunks(data_lines(base_url, {"model": "fake"}, headers=headers))
    assert sum(1 for c in by_header if c["choices"][0]["delta"].get("content")) == 2
    both = chunks(data_lines(base_url, {"model": "fake?tokens=4"}, headers=headers))
    assert sum(1 for c in both if c["choices"][0]["delta"].get("content")) == 4


def test_the_seed000_replay_is_the_transcript_verbatim(base_url: str) -> None:
    expected = [
        line[len("data: ") :]
        for line in SEED.read_text(encoding="utf-8").splitlines()
        if line.startswith("data: ")
    ]
    assert data_lines(base_url, {"model": "replay:seed000"}) == expected
    assert '"name":"get_current_weather"' in expected[0]


def test_logprobs_are_echoed_with_the_asked_number_of_alternatives(base_url: str) -> None:
    body = {"model": "fake?tokens=3", "logprobs": True, "top_logprobs": 3}
    parsed = chunks(data_lines(base_url, body))
    tokens = [c for c in parsed if c["choices"][0]["delta"].get("content")]
    for c in tokens:
        entry = c["choices"][0]["logprobs"]["content"][0]
        assert entry["token"] == c["choices"][0]["delta"]["content"]
        assert bytes(entry["bytes"]).decode() == entry["token"]
        assert len(entry["top_logprobs"]) == 3
    plain = chunks(data_lines(base_url, {"model": "fake?tokens=3"}))
    assert all(c["choices"][0]["logprobs"] is None for c in plain)


def test_a_500_is_answered_before_any_byte_with_an_openai_error(base_url: str) -> None:
    r = httpx.post(f"{base_url}/chat/completions", json={"model": "fake?fail=500", "stream": True})
    assert r.status_code == 500
    assert r.json()["error"]["type"] == "server_error"


def test_a_429_carries_retry_after_and_fail_times_lets_later_requests_through(base_url: str) -> None:
    key = unique()
    model = f"fake?fail=429&retry_after=7&fail_times=2&key={key}&tokens=1"
    statuses = []
    for _ in range(3):
        r = httpx.post(f"{base_url}/chat/completions", json={"model": model, "messages": MESSAGES})
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert r.headers["retry-after"] == "7"
            assert r.json()["error"]["code"] == "rate_limit_exceeded"
    assert statuses == [429, 429, 200]
    other = f"fake?fail=429&fail_times=2&key={unique()}"
    r = httpx.post(f"{base_url}/chat/completions", json={"model": other, "messages": MESSAGES})
    assert r.status_code == 429, "another key has its own counter"


def test_a_drop_truncates_the_chunked_body_after_k_events(base_url: str) -> None:
    body = {"model": "fake?tokens=10&drop_after=3", "messages": MESSAGES, "stream": True}
    got = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("POST", f"{base_url}/chat/completions", json=body) as r,
    ):
        for line in r.iter_lines():
            if line.startswith("data: "):
                got.append(line)
    assert len(got) == 3


def test_a_stall_goes_silent_after_k_events(base_url: str) -> None:
    body = {"model": "fake?tokens=10&stall_after=2&stall=5", "messages": MESSAGES, "stream": True}
    got = []
    with (
        pytest.raises(httpx.ReadTimeout),
        httpx.stream("POST", f"{base_url}/chat/completions", json=body, timeout=0.3) as r,
    ):
        for line in r.iter_lines():
            if line.startswith("data: "):
                got.append(line)
    assert len(got) == 2


def test_error_and_malformed_events_are_injected_after_k_events(base_url: str) -> None:
    lines = data_lines(base_url, {"model": "fake?error_after=2&message=boom"})
    assert len(lines) == 4 and lines[-1] == "[DONE]"
    assert json.loads(lines[2])["error"]["message"] == "boom"
    lines = data_lines(base_url, {"model": "fake?bad_json_after=1"})
    with pytest.raises(ValueError):
        json.loads(lines[1])


def test_no_finish_leaves_out_every_finish_reason(base_url: str) -> None:
    parsed = chunks(data_lines(base_url, {"model": "fake?tokens=3&no_finish=1"}))
    assert all(c["choices"][0]["finish_reason"] is None for c in parsed)
    assert len(parsed) == 4


def test_keepalive_comments_precede_events(base_url: str) -> None:
    body = {"model": "fake?tokens=2&keepalive=1", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", f"{base_url}/chat/completions", json=body) as r:
        lines = [line for line in r.iter_lines() if line]
    assert lines[0] == ": keep-alive"
    events = [line for line in lines if line.startswith("data: {")]
    assert lines.count(": keep-alive") == len(events) == 4
    assert lines[-1] == "data: [DONE]"


def test_the_text_tools_scenario_writes_markup_in_split_content(base_url: str) -> None:
    parsed = chunks(data_lines(base_url, {"model": "text-tools?calls=2"}))
    pieces = [c["choices"][0]["delta"].get("content") or "" for c in parsed]
    text = "".join(pieces)
    assert text.count("<tool_call>") == 2 and text.count("</tool_call>") == 2
    assert "<tool_call>" not in pieces, "the tags are split across pieces"
    assert parsed[-1]["choices"][0]["finish_reason"] == "stop"


def test_reasoning_deltas_use_the_chosen_field(base_url: str) -> None:
    for field in ("reasoning_content", "reasoning"):
        model = f"reasoning?tokens=2&reasoning_field={field}"
        parsed = chunks(data_lines(base_url, {"model": model}))
        thinking = "".join(c["choices"][0]["delta"].get(field) or "" for c in parsed)
        assert thinking.startswith("The user wants")


def test_requests_are_recorded_with_their_bodies_and_headers(base_url: str) -> None:
    key = unique()
    body = {"model": f"fake?key={key}", "messages": MESSAGES, "temperature": 0.2, "seed": 9}
    httpx.post(f"{base_url}/chat/completions", json=body, headers={"X-Trace": "t1"})
    (record,) = fakeupstream.recorded(base_url, key)
    assert record["body"] == body
    assert record["headers"]["x-trace"] == "t1"
    assert record["status"] == "done"


def test_an_api_key_is_required_when_the_server_has_one() -> None:
    with fakeupstream.running(api_key="sk-fake") as url:
        body = {"model": "fake", "messages": MESSAGES}
        assert httpx.post(f"{url}/chat/completions", json=body).status_code == 401
        headers = {"Authorization": "Bearer sk-fake"}
        assert httpx.post(f"{url}/chat/completions", json=body, headers=headers).status_code == 200


def test_unknown_routes_and_bad_bodies_get_openai_errors(base_url: str) -> None:
    r = httpx.get(f"{base_url}/nope")
    assert r.status_code == 404 and "error" in r.json()
    r = httpx.post(f"{base_url}/chat/completions", content=b"{not json")
    assert r.status_code == 400 and "error" in r.json()
    r = httpx.post(f"{base_url}/chat/completions", json={"model": "replay:nope", "messages": []})
    assert r.status_code == 404


# -- the official SDK reads it ---------------------------------------------------------------


def test_the_openai_sdk_streams_text_usage_logprobs_and_n(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="fake?tokens=6",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        n=2,
        logprobs=True,
        top_logprobs=2,
    )
    texts = ["", ""]
    usage = None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.delta.content:
                assert len(choice.logprobs.content[0].top_logprobs) == 2
    assert all(len(t.split()) == 6 for t in texts) and texts[0] != texts[1]
    assert usage is not None and usage.completion_tokens == 12


def test_the_openai_stream_helper_assembles_the_parallel_replay(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    with client.chat.completions.stream(model="replay:parallel", messages=MESSAGES) as stream:
        for _event in stream:
            pass
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.role == "assistant", "a repeated role would be concatenated"
    assert message.content == "I'll check both cities."
    calls = message.tool_calls
    assert [c.id for c in calls] == ["call_Boston7xQpLk2fZr9aT0wNq", "call_Tokyo3mVbN8sWd1yHc5uJe"]
    assert [json.loads(c.function.arguments)["location"] for c in calls] == ["Boston, MA", "Tōkyo"]
    assert final.choices[0].finish_reason == "tool_calls"


def test_the_openai_sdk_reads_non_stream_answers_and_models(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    completion = client.chat.completions.create(model="echo", messages=MESSAGES)
    assert completion.choices[0].message.content == "Say something."
    assert completion.usage is not None and completion.usage.completion_tokens == 2
    replay = client.chat.completions.create(model="replay:seed000", messages=MESSAGES)
    (call,) = replay.choices[0].message.tool_calls
    assert call.function.name == "get_current_weather"
    assert json.loads(call.function.arguments) == {"location": "Boston"}
    assert "replay:seed000" in {m.id for m in client.models.list()}


# -- concurrency -----------------------------------------------------------------------------


def test_it_holds_two_hundred_paced_streams_at_once() -> None:
    streams = 200

    async def one(client: httpx.AsyncClient, url: str) -> list[str]:
        body = {"model": "fake?tokens=3&tps=1", "messages": MESSAGES, "stream": True}
        async with client.stream("POST", f"{url}/chat/completions", json=body) as r:
            return [line async for line in r.aiter_lines() if line.startswith("data: ")]

    async def many(url: str) -> list[list[str]]:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            return await asyncio.gather(*(one(client, url) for _ in range(streams)))

    with fakeupstream.running() as url:
        results = asyncio.run(many(url))
        stats = httpx.get(url.removesuffix("/v1") + "/_stats").json()
    assert all(lines[-1] == "data: [DONE]" and len(lines) == 6 for lines in results)
    assert stats["max_active_streams"] == streams
    assert stats["active_streams"] == 0


@pytest.mark.parametrize("encoding_format", [None, "float"])
def test_the_openai_sdk_reads_the_fakes_embeddings_in_either_encoding(base_url, encoding_format) -> None:
    from fakeupstream.scenarios import embedding

    sdk = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0)
    extra = {"encoding_format": encoding_format} if encoding_format else {}  # the SDK's default: base64
    out = sdk.embeddings.create(model="fake?dims=6", input=["a", "b"], **extra)
    assert [d.embedding for d in out.data] == [embedding("a", 6), embedding("b", 6)]
    assert out.usage.prompt_tokens == 2 and out.object == "list"
    wide = sdk.embeddings.create(model="fake", input="a", dimensions=16)
    assert len(wide.data[0].embedding) == 16


def test_the_fake_refuses_an_empty_embedding_input_with_a_400(base_url) -> None:
    r = httpx.post(f"{base_url}/embeddings", json={"model": "fake", "input": ["x", ""]}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


# -- concurrency limits ----------------------------------------------------------------------


def _stats(url: str) -> dict[str, Any]:
    return httpx.get(url.removesuffix("/v1") + "/_stats", timeout=10).json()


async def _at_once(url: str, models: list[str]) -> list[httpx.Response]:
    """One streamed request per model string, all sent together, each read to its end."""

    async def one(client: httpx.AsyncClient, model: str) -> httpx.Response:
        body = {"model": model, "messages": MESSAGES, "stream": True}
        async with client.stream("POST", f"{url}/chat/completions", json=body) as r:
            await r.aread()
            return r

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        return await asyncio.gather(*(one(client, m) for m in models))


def test_a_model_limit_answers_429_with_retry_after_above_it_and_counts_both() -> None:
    slow = f"fake?tokens=3&tps=2&max_concurrency=2&key={unique()}"
    with fakeupstream.running() as url:
        answers = asyncio.run(_at_once(url, [slow] * 5))
        stats = _stats(url)
        after = httpx.post(f"{url}/chat/completions", json={"model": slow, "messages": MESSAGES}, timeout=10)
    refused = [r for r in answers if r.status_code == 429]
    assert sorted(r.status_code for r in answers) == [200, 200, 429, 429, 429]
    assert all(r.headers["retry-after"] == "1" for r in refused)
    assert all(r.json()["error"]["code"] == "rate_limit_exceeded" for r in refused)
    assert stats["models"][slow] == {"in_flight": 0, "max_in_flight": 2, "rejected_429": 3}
    assert after.status_code == 200  # the slots came back when the streams ended


def test_the_limit_is_per_model_string_and_its_retry_after_can_be_set() -> None:
    a, b = (f"fake?tokens=2&tps=2&max_concurrency=1&retry_after=7&key={unique()}" for _ in range(2))
    with fakeupstream.running() as url:
        answers = asyncio.run(_at_once(url, [a, b, a]))
        stats = _stats(url)
    assert sorted(r.status_code for r in answers) == [200, 200, 429]
    assert next(r for r in answers if r.status_code == 429).headers["retry-after"] == "7"
    assert stats["models"][a]["rejected_429"] == 1 and stats["models"][b]["rejected_429"] == 0


def test_a_server_limit_counts_every_model_and_delete_starts_the_counters_again() -> None:
    models = [f"fake?tokens=2&tps=2&key={unique()}" for _ in range(4)]
    with fakeupstream.running(max_concurrency=3) as url:
        answers = asyncio.run(_at_once(url, models))
        stats = _stats(url)
        httpx.delete(url.removesuffix("/v1") + "/_stats", timeout=10)
        cleared = _stats(url)
    assert sorted(r.status_code for r in answers) == [200, 200, 200, 429]
    assert (stats["max_in_flight"], stats["rejected_429"], stats["in_flight"]) == (3, 1, 0)
    # The read of the counters is itself a request.
    assert (cleared["max_in_flight"], cleared["rejected_429"], cleared["requests"]) == (0, 0, 1)


def test_without_a_limit_nothing_is_refused() -> None:
    with fakeupstream.running() as url:
        answers = asyncio.run(_at_once(url, ["fake?tokens=2&tps=4"] * 20))
        stats = _stats(url)
    assert all(r.status_code == 200 for r in answers)
    assert (stats["max_in_flight"], stats["rejected_429"]) == (20, 0)


def test_an_answered_request_records_when_its_answer_began_and_ended_and_a_refused_one_does_not() -> None:
    model = f"fake?tokens=2&tps=4&max_concurrency=1&key={unique()}"
    with fakeupstream.running() as url:
        answers = asyncio.run(_at_once(url, [model, model]))
        (answered,) = [
            r for r in fakeupstream.recorded(url, key=model.rpartition("=")[2]) if r["status"] == "done"
        ]
        (refused,) = [r for r in fakeupstream.recorded(url) if r["status"] == "failed 429"]
    assert sorted(r.status_code for r in answers) == [200, 429]
    assert answered["began_at"] < answered["ended_at"]
    assert "began_at" not in refused and "ended_at" not in refused


def test_vary_draws_each_requests_length_around_tokens() -> None:
    body = {"model": "fake?tokens=10&vary=0.5", "messages": MESSAGES}
    with fakeupstream.running() as url:
        lengths = [
            httpx.post(f"{url}/chat/completions", json=body, timeout=10).json()["usage"]["completion_tokens"]
            for _ in range(20)
        ]
    assert all(5 <= n <= 15 for n in lengths)
    assert len(set(lengths)) > 1
