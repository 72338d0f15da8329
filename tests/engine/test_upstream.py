"""UpstreamEngine against the fake OpenAI-compatible server: streams, parameters and faults."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import socket
import time
import uuid
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

import fakeupstream
from engine import upstream
from engine.types import (
    CONTENT,
    FINISH,
    THINKING,
    TOOL,
    USAGE,
    Chunk,
    EngineError,
    GenerationRequest,
    UnsupportedParameter,
)
from engine.upstream import SSEParser, UpstreamEngine, _Stream
from fakeupstream.scenarios import TEXT_TOOL_CALLS, WORDS, prompt_tokens
from tests.support import WEATHER_TOOL as WEATHER

SEED = Path(__file__).resolve().parents[2] / "fakeupstream" / "transcripts" / "seed000.sse"
MESSAGES = [{"role": "user", "content": "What is the weather like in Boston?"}]
T = TypeVar("T")


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with fakeupstream.running(port=0) as url:
        yield url


def make(base_url: str, model: str, **config: Any) -> UpstreamEngine:
    settings = {"base_url": base_url, "model": model, "read_timeout": 5, "retry_backoff": 0.01}
    return UpstreamEngine({**settings, **config})


def request(**fields: Any) -> GenerationRequest:
    return GenerationRequest(messages=fields.pop("messages", MESSAGES), **fields)


def keyed(model: str) -> tuple[str, str]:
    """A model string with a fresh fault key, so counters and records are this test's alone."""
    key = uuid.uuid4().hex
    return f"{model}{'&' if '?' in model else '?'}key={key}", key


def run(work: Awaitable[T]) -> T:
    """Runs work on a fresh loop, closing that loop's shared client when done."""

    async def main() -> T:
        try:
            return await work
        finally:
            await upstream.close_shared_client()

    return asyncio.run(main())


def collect(engine: UpstreamEngine, req: GenerationRequest | None = None) -> list[Chunk]:
    async def chunks() -> list[Chunk]:
        return [chunk async for chunk in engine.stream(req or request())]

    return run(chunks())


def collect_until_error(
    engine: UpstreamEngine, req: GenerationRequest | None = None
) -> tuple[list[Chunk], EngineError]:
    got: list[Chunk] = []

    async def chunks() -> None:
        async for chunk in engine.stream(req or request()):
            got.append(chunk)

    with pytest.raises(EngineError) as caught:  # the partial chunks come before the error
        run(chunks())
    return got, caught.value


async def status_once_settled(base_url: str, key: str) -> dict[str, Any]:
    """The fake's record of a request, once it stopped streaming (or after 10 s). Polled from a
    thread so the loop that ran the engine keeps running: a response closed only when the loop
    shuts down would not count."""
    deadline = time.monotonic() + 10
    while True:
        (record,) = await asyncio.to_thread(fakeupstream.recorded, base_url, key)
        if record["status"] != "streaming" or time.monotonic() > deadline:
            return record
        await asyncio.sleep(0.05)


def text(chunks: list[Chunk], choice: int = 0) -> str:
    return "".join(c.data["content"] for c in chunks if c.type == CONTENT and c.choice == choice)


def calls(chunks: list[Chunk]) -> list[dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for c in chunks:
        if c.type != TOOL:
            continue
        k = c.data["index"]
        if "id" in c.data:
            assert k not in out, "one first fragment per call"
            out[k] = {"id": c.data["id"], "name": c.data["name"], "arguments": ""}
        else:
            assert set(c.data) == {"index", "arguments"}
            assert c.data["arguments"], "empty argument fragments are dropped"
        out[k]["arguments"] += c.data.get("arguments", "")
    return [out[k] for k in sorted(out)]


def idle_connections(client: aiohttp.ClientSession) -> int:
    """Connections the session's pool keeps for the next request (aiohttp keeps no public count)."""
    assert client.connector is not None
    return sum(len(idle) for idle in client.connector._conns.values())  # type: ignore[attr-defined]


def only(chunks: list[Chunk], kind: str) -> list[Chunk]:
    return [c for c in chunks if c.type == kind]


# -- streams ---------------------------------------------------------------------------------


def test_the_seed000_replay_yields_one_get_current_weather_call_with_its_arguments(
    base_url: str,
) -> None:
    expected = ""
    for line in SEED.read_text(encoding="utf-8").splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:])["choices"]:
                for fragment in choice["delta"].get("tool_calls") or []:
                    expected += fragment["function"].get("arguments", "")
    chunks = collect(make(base_url, "replay:seed000"), request(tools=[WEATHER]))
    (call,) = calls(chunks)
    assert call["name"] == "get_current_weather"
    assert call["id"] == "call_telkvFkERZ3MW3eLzHsVrRhl"
    assert call["arguments"] == expected
    assert json.loads(expected) == {"location": "Boston"}
    assert not only(chunks, CONTENT)
    assert [c.data for c in only(chunks, FINISH)] == [{"finish_reason": "tool_calls"}]
    assert chunks[-1].type == USAGE and chunks[-1].data["estimated"] is True


def test_parallel_tool_calls_follow_the_content_by_index(base_url: str) -> None:
    chunks = collect(make(base_url, "replay:parallel"))
    assert text(chunks) == "I'll check both cities."
    first_tool = next(i for i, c in enumerate(chunks) if c.type == TOOL)
    assert all(c.type == CONTENT for c in chunks[:first_tool])
    got = calls(chunks)
    assert [c["id"] for c in got] == ["call_Boston7xQpLk2fZr9aT0wNq", "call_Tokyo3mVbN8sWd1yHc5uJe"]
    assert [json.loads(c["arguments"]) for c in got] == [
        {"location": "Boston, MA", "unit": "celsius"},
        {"location": "Tōkyo", "unit": "celsius"},
    ]
    assert only(chunks, FINISH)[0].data == {"finish_reason": "tool_calls"}


def test_a_non_stream_answer_to_a_stream_request_is_still_read(base_url: str) -> None:
    chunks = collect(make(base_url, "replay:parallel?ignore_stream=1"))
    assert text(chunks) == "I'll check both cities."
    assert [c["name"] for c in calls(chunks)] == ["get_current_weather"] * 2
    assert json.loads(calls(chunks)[1]["arguments"])["location"] == "Tōkyo"
    assert chunks[-1].data == {"input_tokens": 82, "output_tokens": 49}


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_deltas_become_thinking_chunks(base_url: str, field: str) -> None:
    chunks = collect(make(base_url, f"reasoning?tokens=3&reasoning_field={field}"))
    thinking = "".join(c.data["thinking"] for c in only(chunks, THINKING))
    assert thinking == "The user wants an answer. I will think briefly, then reply in plain words."
    assert text(chunks) == " ".join(WORDS[:3])
    last_thinking = max(i for i, c in enumerate(chunks) if c.type == THINKING)
    assert last_thinking < min(i for i, c in enumerate(chunks) if c.type == CONTENT)


def test_logprobs_ride_on_their_content_chunks(base_url: str) -> None:
    model, key = keyed("fake?tokens=4")
    chunks = collect(make(base_url, model), request(logprobs=True, top_logprobs=2))
    contents = only(chunks, CONTENT)
    assert len(contents) == 4
    for c in contents:
        (entry,) = c.logprobs
        assert entry["token"] == c.data["content"]
        assert len(entry["top_logprobs"]) == 2
    (record,) = fakeupstream.recorded(base_url, key)
    assert record["body"]["logprobs"] is True and record["body"]["top_logprobs"] == 2


def test_n2_yields_two_choices_each_with_one_finish_and_one_usage_in_all(base_url: str) -> None:
    chunks = collect(make(base_url, "fake?tokens=5"), request(n=2))
    assert len(text(chunks, 0).split()) == len(text(chunks, 1).split()) == 5
    assert text(chunks, 0) != text(chunks, 1)
    assert sorted(c.choice for c in only(chunks, FINISH)) == [0, 1]
    assert len(only(chunks, USAGE)) == 1 and chunks[-1].type == USAGE


def test_the_upstreams_usage_is_passed_through(base_url: str) -> None:
    chunks = collect(make(base_url, "fake?tokens=7"))
    assert chunks[-1] == Chunk(USAGE, {"input_tokens": prompt_tokens(MESSAGES), "output_tokens": 7})


def test_usage_is_estimated_and_marked_when_the_upstream_sends_none(base_url: str) -> None:
    chunks = collect(make(base_url, "fake?tokens=7&usage=0"))
    usage = chunks[-1]
    assert usage.type == USAGE and usage.data["estimated"] is True
    assert usage.data["output_tokens"] == 7  # seven plain words
    assert usage.data["input_tokens"] == 8  # "What is the weather like in Boston ?"
    assert len(only(chunks, USAGE)) == 1


def test_max_tokens_cut_reports_length(base_url: str) -> None:
    chunks = collect(make(base_url, "fake?tokens=9"), request(max_tokens=3))
    assert len(only(chunks, CONTENT)) == 3
    assert only(chunks, FINISH)[0].data == {"finish_reason": "length"}


def test_legacy_prompts_go_to_the_servers_completions_and_come_back_as_choices(base_url: str) -> None:
    model, key = keyed("fake?tokens=3")
    req = request(messages=[], prompt=["Once", "Twice"], n=2, suffix=" end.", logprobs=True, top_logprobs=1)
    chunks = collect(make(base_url, model), req)
    (record,) = fakeupstream.recorded(base_url, key)
    assert record["path"] == "/v1/completions"
    assert record["body"] == {
        "model": model, "prompt": ["Once", "Twice"], "n": 2, "suffix": " end.", "logprobs": 1,
        "stream": True, "stream_options": {"include_usage": True},
    }  # fmt: skip
    assert sorted(c.choice for c in only(chunks, FINISH)) == [0, 1, 2, 3]
    for c in only(chunks, CONTENT):
        # The legacy logprobs (tokens, token_logprobs, top_logprobs) as chat's entries.
        (entry,) = c.logprobs
        assert entry["token"] == c.data["content"] and entry["logprob"] < 0
        assert [t["token"] for t in entry["top_logprobs"]] == [c.data["content"]]
    assert len(only(chunks, USAGE)) == 1


def test_a_single_legacy_prompt_is_sent_as_a_string(base_url: str) -> None:
    model, key = keyed("echo")
    chunks = collect(make(base_url, model), request(messages=[], prompt=["to be or not"]))
    assert text(chunks, 0) == "to be or not"
    (record,) = fakeupstream.recorded(base_url, key)
    assert record["body"]["prompt"] == "to be or not" and "messages" not in record["body"]


# -- what is sent ----------------------------------------------------------------------------


def test_a_default_request_sends_only_model_messages_and_streaming(base_url: str) -> None:
    model, key = keyed("fake?tokens=1")
    collect(make(base_url, model))
    (record,) = fakeupstream.recorded(base_url, key)
    assert record["body"] == {
        "model": model,
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_every_set_parameter_is_passed_through(base_url: str) -> None:
    model, key = keyed("fake?tokens=1")
    req = request(
        max_tokens=50,
        temperature=0.3,
        top_p=0.9,
        n=2,
        stop=["\n\n"],
        seed=42,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        logit_bias={1234: -100.0},
        logprobs=True,
        top_logprobs=3,
        tools=[WEATHER],
        tool_choice="auto",
        parallel_tool_calls=False,
        response_format={"type": "json_object"},
        user="user-7",
    )
    collect(make(base_url, model), req)
    (record,) = fakeupstream.recorded(base_url, key)
    assert record["body"] == {
        "model": model,
        "messages": MESSAGES,
        "max_tokens": 50,
        "temperature": 0.3,
        "top_p": 0.9,
        "n": 2,
        "stop": ["\n\n"],
        "seed": 42,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "logit_bias": {"1234": -100.0},
        "logprobs": True,
        "top_logprobs": 3,
        "tools": [WEATHER],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "response_format": {"type": "json_object"},
        "user": "user-7",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_the_api_key_and_extra_headers_are_sent_but_never_described(base_url: str) -> None:
    model, key = keyed("fake?tokens=1")
    engine = make(base_url, model, api_key="sk-secret-1", headers={"X-Org": "spool"})
    collect(engine)
    (record,) = fakeupstream.recorded(base_url, key)
    assert record["headers"]["authorization"] == "Bearer sk-secret-1"
    assert record["headers"]["x-org"] == "spool"
    assert engine.describe() == {
        "kind": "openai",
        "model": model,
        "base_url": base_url,
        "text_tools": False,
        "embedding_model": model,
    }
    with_userinfo = UpstreamEngine({"base_url": "https://bob:pw@example.com/v1", "model": "m"})
    assert with_userinfo.describe()["base_url"] == "https://example.com/v1"


def test_a_wrong_api_key_is_a_4xx_error_with_the_upstreams_message_and_no_retry() -> None:
    with fakeupstream.running(api_key="sk-right") as url:
        engine = make(url, "fake", api_key="sk-wrong")
        chunks, error = collect_until_error(engine)
        assert chunks == []
        assert error.code == "upstream_error"
        assert "401" in str(error) and "Incorrect API key" in str(error)
        assert len(fakeupstream.recorded(url)) == 1


# -- text tools ------------------------------------------------------------------------------


def test_text_tools_describe_the_tools_in_a_system_message_and_parse_the_calls(
    base_url: str,
) -> None:
    model, key = keyed("text-tools?calls=3")
    engine = make(base_url, model, text_tools=True)
    chunks = collect(engine, request(tools=[WEATHER], tool_choice="auto", parallel_tool_calls=True))
    (record,) = fakeupstream.recorded(base_url, key)
    sent = record["body"]
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(sent)
    assert sent["messages"][0]["role"] == "system"
    assert '"name": "get_current_weather"' in sent["messages"][0]["content"]
    assert sent["messages"][1:] == MESSAGES
    assert text(chunks) == "Let me check the weather.\n\n\n"
    assert "<tool_call>" not in text(chunks)
    got = calls(chunks)
    assert [(c["name"], json.loads(c["arguments"])) for c in got] == [
        (name, args) for name, args in TEXT_TOOL_CALLS
    ]
    assert only(chunks, FINISH)[0].data == {"finish_reason": "tool_calls"}


def test_text_tools_render_earlier_tool_turns_as_plain_messages(base_url: str) -> None:
    model, key = keyed("fake?tokens=2")
    history = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_current_weather", "arguments": '{"location": "x"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
    ]
    chunks = collect(make(base_url, model, text_tools=True), request(messages=history, tools=[WEATHER]))
    assert only(chunks, FINISH)[0].data == {"finish_reason": "stop"}
    (record,) = fakeupstream.recorded(base_url, key)
    sent = record["body"]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert all(set(m) == {"role", "content"} for m in sent)
    assert "<tool_call>" in sent[2]["content"] and "sunny" in sent[3]["content"]


def test_without_text_tools_a_markup_answer_stays_content(base_url: str) -> None:
    chunks = collect(make(base_url, "text-tools"), request(tools=[WEATHER]))
    assert "<tool_call>" in text(chunks)
    assert not only(chunks, TOOL)


def test_check_refuses_non_function_tools_only_for_text_tools(base_url: str) -> None:
    req = request(tools=[WEATHER, {"type": "file_search"}])
    make(base_url, "fake").check(req)
    with pytest.raises(UnsupportedParameter) as caught:
        make(base_url, "fake", text_tools=True).check(req)
    assert caught.value.param == "tools"


# -- faults ----------------------------------------------------------------------------------


def test_it_retries_a_500_then_succeeds(base_url: str) -> None:
    model, key = keyed("fake?tokens=3&fail=500&fail_times=2")
    chunks = collect(make(base_url, model))
    assert text(chunks) == " ".join(WORDS[:3])
    assert [r["attempt"] for r in fakeupstream.recorded(base_url, key)] == [1, 2, 3]


def test_it_retries_a_429_after_retry_after(base_url: str) -> None:
    model, key = keyed("fake?tokens=3&fail=429&retry_after=1&fail_times=1")
    started = time.monotonic()
    chunks = collect(make(base_url, model))
    waited = time.monotonic() - started
    assert waited >= 1.0
    assert text(chunks) == " ".join(WORDS[:3])
    assert len(fakeupstream.recorded(base_url, key)) == 2


def test_exhausted_retries_raise_an_upstream_error(base_url: str) -> None:
    model, key = keyed("fake?fail=503&message=overloaded")
    chunks, error = collect_until_error(make(base_url, model, max_retries=2))
    assert chunks == []
    assert error.code == "upstream_error"
    assert "3 attempts" in str(error) and "overloaded" in str(error)
    assert len(fakeupstream.recorded(base_url, key)) == 3


def test_a_retry_after_beyond_the_wait_budget_fails_at_once(base_url: str) -> None:
    model, key = keyed("fake?fail=429&retry_after=100")
    _, error = collect_until_error(make(base_url, model, retry_max_wait=2))
    assert error.code == "upstream_error" and "429" in str(error)
    assert len(fakeupstream.recorded(base_url, key)) == 1


@pytest.fixture
def retries() -> Iterator[list[str]]:
    """The codes the retry listener is told, in order."""
    heard: list[str] = []
    upstream.on_retry(lambda code, retry_after: heard.append(code))
    try:
        yield heard
    finally:
        upstream.on_retry(None)


def test_the_retry_listener_hears_each_retry_with_its_status(base_url: str, retries: list[str]) -> None:
    model, _ = keyed("fake?tokens=3&fail=500&fail_times=2")
    collect(make(base_url, model))
    assert retries == ["500", "500"]


def test_the_retry_listener_hears_nothing_of_the_attempt_that_is_not_retried(
    base_url: str, retries: list[str]
) -> None:
    model, _ = keyed("fake?fail=503")
    collect_until_error(make(base_url, model, max_retries=2))
    assert retries == ["503", "503"]  # three attempts, two retries
    model, _ = keyed("fake?fail=400")
    collect_until_error(make(base_url, model))
    assert retries == ["503", "503"]


def test_the_retry_listener_hears_a_refused_connection_as_a_connection_error(retries: list[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    collect_until_error(make(f"http://127.0.0.1:{port}/v1", "fake", max_retries=1))
    assert retries == ["connection_error"]


def test_a_400_is_not_retried_and_carries_the_upstreams_message(base_url: str) -> None:
    model, key = keyed("fake?fail=400&message=temperature+is+too+high")
    _, error = collect_until_error(make(base_url, model))
    assert error.code == "upstream_error"
    assert "temperature is too high" in str(error)
    assert len(fakeupstream.recorded(base_url, key)) == 1


def test_a_refused_connection_is_retried_then_reported() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once the socket is closed
    engine = make(f"http://127.0.0.1:{port}/v1", "fake", max_retries=1)
    chunks, error = collect_until_error(engine)
    assert chunks == []
    assert error.code == "upstream_error" and "2 attempts" in str(error)


def test_a_drop_before_the_first_chunk_is_retried(base_url: str) -> None:
    model, key = keyed("fake?tokens=3&drop_after=1&fail_times=1")
    chunks = collect(make(base_url, model))
    assert text(chunks) == " ".join(WORDS[:3])
    assert [r["status"] for r in fakeupstream.recorded(base_url, key)] == ["dropped", "done"]


def test_a_drop_mid_stream_raises_after_the_partial_chunks(base_url: str) -> None:
    model, key = keyed("fake?tokens=10&drop_after=4")
    chunks, error = collect_until_error(make(base_url, model))
    assert text(chunks) == " ".join(WORDS[:3])  # the role event, then three tokens
    assert error.code == "upstream_error"
    assert len(fakeupstream.recorded(base_url, key)) == 1, "nothing is retried after output"


def test_a_stall_past_the_read_timeout_raises_upstream_timeout(base_url: str) -> None:
    model, _ = keyed("fake?tokens=10&stall_after=3&stall=5")
    chunks, error = collect_until_error(make(base_url, model, read_timeout=0.5))
    assert text(chunks) == " ".join(WORDS[:2])
    assert error.code == "upstream_timeout"


def test_silence_before_the_response_is_a_timeout_and_is_not_retried(base_url: str) -> None:
    model, key = keyed("fake?ttfb=3")
    chunks, error = collect_until_error(make(base_url, model, read_timeout=0.5))
    assert chunks == [] and error.code == "upstream_timeout"
    assert len(fakeupstream.recorded(base_url, key)) == 1


def test_an_error_event_in_the_stream_raises_with_its_message(base_url: str) -> None:
    chunks, error = collect_until_error(make(base_url, "fake?error_after=3&message=model+crashed"))
    assert text(chunks) == " ".join(WORDS[:2])
    assert error.code == "upstream_error" and "model crashed" in str(error)


def test_malformed_json_in_the_stream_raises(base_url: str) -> None:
    chunks, error = collect_until_error(make(base_url, "fake?bad_json_after=3"))
    assert text(chunks) == " ".join(WORDS[:2])
    assert error.code == "upstream_error" and "malformed JSON" in str(error)


def test_a_stream_without_finish_reason_is_a_failure(base_url: str) -> None:
    chunks, error = collect_until_error(make(base_url, "fake?tokens=3&no_finish=1"))
    assert text(chunks) == " ".join(WORDS[:3])
    assert "without finish_reason" in str(error)
    assert not only(chunks, FINISH)


def test_keepalive_comments_are_ignored(base_url: str) -> None:
    chunks = collect(make(base_url, "fake?tokens=3&keepalive=1"))
    assert text(chunks) == " ".join(WORDS[:3])


def test_closing_the_generator_mid_stream_closes_the_response(base_url: str) -> None:
    model, key = keyed("fake?tokens=500&tps=50")

    async def main() -> dict[str, Any]:
        stream = make(base_url, model).stream(request())
        assert [(await anext(stream)).type for _ in range(3)] == [CONTENT] * 3
        await stream.aclose()
        return await status_once_settled(base_url, key)

    record = run(main())
    assert record["status"] == "disconnected"
    assert record["events_sent"] < 100


def test_cancelling_the_consuming_task_mid_stream_closes_the_response(base_url: str) -> None:
    model, key = keyed("fake?tokens=500&tps=50")

    async def main() -> tuple[list[Chunk], dict[str, Any], bool]:
        got: list[Chunk] = []
        three = asyncio.Event()
        stream = make(base_url, model).stream(request())

        async def consume() -> None:
            async for chunk in stream:
                got.append(chunk)
                if len(got) == 3:
                    three.set()

        task = asyncio.create_task(consume())
        await three.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        record = await status_once_settled(base_url, key)
        return got, record, stream.ag_frame is None

    got, record, finished = run(main())
    assert [c.type for c in got[:3]] == [CONTENT] * 3
    assert record["status"] == "disconnected"
    assert record["events_sent"] < 100
    assert finished  # the cancel ended the generator, not only the task reading it


def test_two_streams_run_at_once_over_the_loops_one_client(base_url: str) -> None:
    model_a, key_a = keyed("fake?tokens=10&tps=50")
    model_b, key_b = keyed("fake?tokens=10&tps=50")
    engine_a = make(base_url, model_a, api_key="sk-a")
    engine_b = make(base_url, model_b, headers={"X-Org": "b"})
    arrivals: list[str] = []

    async def read(name: str, engine: UpstreamEngine) -> list[Chunk]:
        got = []
        async for chunk in engine.stream(request()):
            arrivals.append(name)
            got.append(chunk)
        return got

    async def main() -> tuple[list[Chunk], list[Chunk], int]:
        client = upstream.shared_client()
        a, b = await asyncio.gather(read("a", engine_a), read("b", engine_b))
        assert upstream.shared_client() is client
        # Both connections went back to the one pool for the next generations to reuse.
        idle = idle_connections(client)
        return a, b, idle

    a, b, idle = run(main())
    assert text(a) == text(b) == " ".join(WORDS[:10])
    # Each stream took 0.2 s; read one after the other, neither would start before the other ended.
    assert arrivals.index("b") < len(arrivals) - 1 - arrivals[::-1].index("a")
    assert arrivals.index("a") < len(arrivals) - 1 - arrivals[::-1].index("b")
    assert idle == 2
    # One client, yet each request carried its own engine's headers and no other's.
    (record_a,) = fakeupstream.recorded(base_url, key_a)
    (record_b,) = fakeupstream.recorded(base_url, key_b)
    assert record_a["headers"]["authorization"] == "Bearer sk-a" and "x-org" not in record_a["headers"]
    assert record_b["headers"]["x-org"] == "b" and "authorization" not in record_b["headers"]


def test_each_engine_keeps_its_own_read_timeout_on_the_loops_one_client(base_url: str) -> None:
    stalling = "fake?tokens=5&stall_after=2&stall=1"  # one second of silence after the first token
    impatient = make(base_url, keyed(stalling)[0], read_timeout=0.3)
    patient = make(base_url, keyed(stalling)[0], read_timeout=3)

    async def outcome(engine: UpstreamEngine) -> str:
        try:
            return text([chunk async for chunk in engine.stream(request())])
        except EngineError as exc:
            return exc.code

    async def main() -> list[str]:
        return list(await asyncio.gather(outcome(impatient), outcome(patient)))

    assert run(main()) == ["upstream_timeout", " ".join(WORDS[:5])]


def test_a_finished_stream_leaves_its_connection_to_the_next_one(base_url: str) -> None:
    engine = make(base_url, "fake?tokens=3")

    async def main() -> list[int]:
        client = upstream.shared_client()
        sizes = []
        for _ in range(3):
            assert text([chunk async for chunk in engine.stream(request())]) == " ".join(WORDS[:3])
            sizes.append(idle_connections(client))
        return sizes

    assert run(main()) == [1, 1, 1]


def test_each_event_loop_has_its_own_client() -> None:
    async def client() -> object:
        return upstream.shared_client()

    assert run(client()) is not run(client())


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # the sockets of loops never closed
def test_the_client_of_a_loop_that_ended_without_closing_it_is_let_go(base_url: str) -> None:
    engine = make(base_url, "fake?tokens=2")
    # Loops that live on (an earlier test's worker loop in this process) keep their own client.
    others = list(upstream._clients)

    async def stream_once() -> list[Chunk]:
        return [chunk async for chunk in engine.stream(request())]

    for _ in range(3):
        asyncio.run(stream_once())  # no close_shared_client(): its idle connection stays
    ours = [loop for loop in upstream._clients if loop not in others]
    assert len(ours) == 1  # the last loop's, until the next loop makes its own
    for loop in ours:
        del upstream._clients[loop]
    del ours
    gc.collect()  # its sockets close here, under this test's warning filter


# -- wire parsing details --------------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("piece", [1, 3, 1000])
def test_sse_events_are_split_on_blank_lines_and_also_when_a_server_omits_them(
    newline: str, piece: int
) -> None:
    lines = [": ping", "event: message", 'data: {"a":', "data: 1}", "", "id: 7", "data: {}"]
    lines += ["data: [DONE]"]
    raw = newline.join(lines).encode()  # no line end after the last line: the body just ends
    sse = SSEParser()
    events = [data for i in range(0, len(raw), piece) for data in sse.feed(raw[i : i + piece])]
    events += sse.close()
    assert events == [b'{"a":\n1}', b"{}", b"[DONE]"]


def test_a_tool_name_arriving_after_its_id_is_held_until_known() -> None:
    state = _Stream(text_tools=False)

    def delta(**fields: Any) -> dict[str, Any]:
        return {"choices": [{"index": 0, "delta": fields, "finish_reason": None}]}

    first = list(state.take(delta(tool_calls=[{"index": 0, "id": "call_x", "function": {}}])))
    fragment = {"index": 0, "function": {"name": "f", "arguments": "{}"}}
    second = list(state.take(delta(tool_calls=[fragment])))
    assert first == []
    assert [c.data for c in second] == [{"index": 0, "id": "call_x", "name": "f", "arguments": "{}"}]


def test_reasoning_sent_in_both_fields_is_not_duplicated() -> None:
    state = _Stream(text_tools=False)
    event = {"choices": [{"index": 0, "delta": {"reasoning_content": "hm", "reasoning": "hm"}}]}
    assert [c.data for c in state.take(event)] == [{"thinking": "hm"}]


def test_the_retry_listener_hears_how_long_a_429_asked_to_wait(base_url: str) -> None:
    heard: list[tuple[str, float | None]] = []
    upstream.on_retry(lambda code, retry_after: heard.append((code, retry_after)))
    try:
        model, _ = keyed("fake?tokens=3&fail=429&retry_after=1&fail_times=1")
        collect(make(base_url, model))
    finally:
        upstream.on_retry(None)
    assert heard == [("429", 1.0)]
