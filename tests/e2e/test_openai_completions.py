"""OpenAI's legacy /v1/completions, driven by the unmodified openai SDK (client.completions),
on the offline engine and through an upstream engine (the fake upstream's /v1/completions)."""

from __future__ import annotations

import uuid

import httpx
import openai
import pytest

import fakeupstream
from tests.e2e.openai_helpers import NO_EOT, OFFLINE, client, data_events, raw_stream, upstream_engine

pytestmark = pytest.mark.e2e

PROMPT = "The king"


def _streamed(stream) -> tuple[dict[int, str], dict[int, str], list]:
    """(text by choice index, finish reason by index, every chunk) of an SDK stream."""
    texts: dict[int, str] = {}
    reasons: dict[int, str] = {}
    chunks = list(stream)
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + choice.text
            if choice.finish_reason:
                reasons[choice.index] = choice.finish_reason
    return texts, reasons, chunks


def test_a_completion_is_a_text_completion_object_with_usage(spool, pg):
    from jobs.models import Job

    raw = client(spool).completions.with_raw_response.create(
        model=OFFLINE, prompt=PROMPT, max_tokens=8, seed=7, logit_bias=NO_EOT, user="user-1"
    )
    done = raw.parse()
    assert done.object == "text_completion" and done.model == OFFLINE
    job = Job.objects.get(pk=raw.headers["x-spool-job-id"])
    assert done.id == "cmpl-" + job.pk.hex and job.face == "completions"
    (choice,) = done.choices
    assert choice.index == 0 and choice.finish_reason == "length" and choice.logprobs is None
    assert choice.text == job.result["choices"][0]["content"] and choice.text.strip()
    assert done.usage.completion_tokens == 8 and done.usage.prompt_tokens == 2
    assert done.usage.total_tokens == 10
    assert job.request["prompt"] == [PROMPT] and job.request["messages"] == []


def test_max_tokens_defaults_to_sixteen_as_openais_does(spool):
    done = client(spool).completions.create(model=OFFLINE, prompt=PROMPT, logit_bias=NO_EOT)
    assert done.usage.completion_tokens == 16 and done.choices[0].finish_reason == "length"


def test_streamed_text_equals_the_whole_answer_for_the_same_seed(spool):
    args = {"model": OFFLINE, "prompt": PROMPT, "max_tokens": 12, "seed": 11, "logit_bias": NO_EOT}
    whole = client(spool).completions.create(**args)
    texts, reasons, chunks = _streamed(
        client(spool).completions.create(**args, stream=True, stream_options={"include_usage": True})
    )
    assert texts == {0: whole.choices[0].text} and reasons == {0: "length"}
    assert len(chunks) > 3 and len({c.id for c in chunks}) == 1 and chunks[0].id != whole.id
    assert all(c.object == "text_completion" for c in chunks)
    # Under include_usage: usage null on every chunk but the last, which has no choices.
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12
    assert all(c.usage is None for c in chunks[:-1])


def test_the_wire_is_data_only_sse_ending_in_done(spool):
    response, lines = raw_stream(
        spool, {"model": OFFLINE, "prompt": PROMPT, "max_tokens": 4}, path="/v1/completions"
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = data_events(lines)
    assert events[-1] == "[DONE]" and all(isinstance(e, dict) for e in events[:-1])
    assert all(line.startswith(("data: ", ":")) or line == "" for line in lines)
    finishes = [c["finish_reason"] for e in events[:-1] for c in e["choices"]]
    assert finishes[-1] in ("stop", "length") and all(f is None for f in finishes[:-1])
    assert all("usage" not in e for e in events[:-1])  # only under stream_options.include_usage


def test_stop_ends_the_text_before_the_stop_sequence(spool):
    args = {"model": OFFLINE, "prompt": PROMPT, "max_tokens": 12, "seed": 21, "logit_bias": NO_EOT}
    full = client(spool).completions.create(**args).choices[0].text
    word = full.split()[5]
    cut = client(spool).completions.create(**args, stop=[" " + word])
    (choice,) = cut.choices
    assert choice.finish_reason == "stop" and choice.text == full[: full.index(" " + word)]


def test_temperature_zero_gives_the_same_text_each_time(spool):
    args = {"model": OFFLINE, "prompt": "My lord", "max_tokens": 8, "temperature": 0, "top_p": 0.5}
    first, second = (client(spool).completions.create(**args).choices[0].text for _ in range(2))
    assert first == second and first


def test_logprobs_come_in_the_legacy_form(spool):
    done = client(spool).completions.create(
        model=OFFLINE, prompt=PROMPT, max_tokens=6, logprobs=3, seed=2, logit_bias=NO_EOT
    )
    (choice,) = done.choices
    lp = choice.logprobs
    assert "".join(lp.tokens) == choice.text and len(lp.tokens) == 6
    assert len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 6
    assert all(x <= 0 for x in lp.token_logprobs)
    assert all(len(top) == 3 and max(top.values()) <= 0 for top in lp.top_logprobs)
    starts = [sum(len(t) for t in lp.tokens[:i]) for i in range(6)]
    assert lp.text_offset == starts

    texts, _, chunks = _streamed(
        client(spool).completions.create(
            model=OFFLINE, prompt=PROMPT, max_tokens=6, logprobs=3, seed=2, logit_bias=NO_EOT, stream=True
        )
    )
    streamed = [c.choices[0].logprobs for c in chunks if c.choices and c.choices[0].text]
    assert texts[0] == choice.text
    assert [t for s in streamed for t in s.tokens] == lp.tokens
    assert [o for s in streamed for o in s.text_offset] == lp.text_offset
    assert [x for s in streamed for x in s.token_logprobs] == lp.token_logprobs


def test_n_continuations_of_each_prompt_are_indexed_prompt_by_prompt(spool, pg):
    from jobs.models import Job

    prompts = ["The king", "The sea"]
    args = {"model": OFFLINE, "prompt": prompts, "n": 2, "max_tokens": 5, "seed": 3, "logit_bias": NO_EOT}
    raw = client(spool).completions.with_raw_response.create(**args)
    done = raw.parse()
    assert [c.index for c in done.choices] == [0, 1, 2, 3]
    assert all(c.finish_reason == "length" for c in done.choices)
    assert len({c.text for c in done.choices}) == 4  # each choice sampled on its own
    assert done.usage.completion_tokens == 20 and done.usage.prompt_tokens == 4
    job = Job.objects.get(pk=raw.headers["x-spool-job-id"])
    assert len(job.result["choices"]) == 4

    texts, reasons, _ = _streamed(client(spool).completions.create(**args, stream=True))
    assert texts == {c.index: c.text for c in done.choices}
    assert reasons == {0: "length", 1: "length", 2: "length", 3: "length"}


def test_echo_puts_each_prompt_before_its_text(spool):
    prompts = ["Once upon a time", "The sea"]
    args = {"model": OFFLINE, "prompt": prompts, "n": 2, "max_tokens": 4, "seed": 5, "logit_bias": NO_EOT}
    plain = client(spool).completions.create(**args)
    echoed = client(spool).completions.create(**args, echo=True)
    for a, b in zip(plain.choices, echoed.choices, strict=True):
        assert b.text == prompts[a.index // 2] + a.text
    texts, _, chunks = _streamed(client(spool).completions.create(**args, echo=True, stream=True))
    assert texts == {c.index: c.text for c in echoed.choices}
    first = {}
    for chunk in chunks:
        for c in chunk.choices:
            first.setdefault(c.index, c.text)
    assert all(first[i].startswith(prompts[i // 2]) for i in range(4))  # the prompt comes first


def test_echo_with_logprobs_and_no_new_tokens_scores_the_prompt_as_harnesses_ask(spool):
    # What evaluation harnesses send to score a text: the prompt's own log-probabilities.
    text = "The king is dead, long live the king"
    done = client(spool).completions.create(model=OFFLINE, prompt=text, echo=True, logprobs=2, max_tokens=0)
    (choice,) = done.choices
    lp = choice.logprobs
    assert choice.text == text and choice.finish_reason == "length" and done.usage.completion_tokens == 0
    assert "".join(lp.tokens) == text and len(lp.tokens) == done.usage.prompt_tokens
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None  # nothing precedes it
    assert all(x <= 0 for x in lp.token_logprobs[1:]) and all(len(t) == 2 for t in lp.top_logprobs[1:])
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(len(lp.tokens))]
    # A likelier continuation scores higher than an unlikely one, token for token.
    likely = client(spool).completions.create(
        model=OFFLINE, prompt="my lord", echo=True, logprobs=0, max_tokens=0
    )
    unlikely = client(spool).completions.create(
        model=OFFLINE, prompt="my zebra", echo=True, logprobs=0, max_tokens=0
    )
    assert likely.choices[0].logprobs.token_logprobs[-1] > unlikely.choices[0].logprobs.token_logprobs[-1]


def test_echo_with_logprobs_streams_the_scored_prompt_then_the_new_tokens(spool):
    args = {"model": OFFLINE, "prompt": ["The sea", "My lord"], "n": 2, "echo": True, "logprobs": 1,
            "max_tokens": 3, "seed": 8, "logit_bias": NO_EOT}  # fmt: skip
    whole = client(spool).completions.create(**args)
    texts, _, chunks = _streamed(client(spool).completions.create(**args, stream=True))
    assert texts == {c.index: c.text for c in whole.choices}
    for c in whole.choices:
        lp = c.logprobs
        assert c.text.startswith(args["prompt"][c.index // 2]) and "".join(lp.tokens) == c.text
        assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(len(lp.tokens))]
        streamed = [ch.choices[0].logprobs for ch in chunks if ch.choices and ch.choices[0].index == c.index]
        assert [t for s in streamed if s for t in s.tokens] == lp.tokens
        assert [o for s in streamed if s for o in s.text_offset] == lp.text_offset


def test_an_upstream_engine_refuses_echo_with_logprobs(spool, upstream_model):
    model, _ = upstream_model("fake")
    with pytest.raises(openai.BadRequestError) as caught:
        client(spool).completions.create(model=model, prompt="x", echo=True, logprobs=1)
    assert (caught.value.param, caught.value.code) == ("echo", "unsupported_parameter")


@pytest.mark.parametrize(
    ("extra", "param", "code"),
    [
        ({"suffix": " and so it ended."}, "suffix", "unsupported_parameter"),
        ({"prompt": [[1, 2, 3]]}, "prompt", "unsupported_value"),
        ({"prompt": [1, 2, 3]}, "prompt", "unsupported_value"),
        ({"prompt": []}, "prompt", "empty_array"),
        ({"prompt": 5}, "prompt", "invalid_type"),
        ({"logprobs": 6}, "logprobs", "integer_above_max_value"),
        ({"best_of": 3}, "best_of", "unsupported_value"),
        ({"n": 2, "best_of": 1}, "best_of", "invalid_value"),
        ({"stream_options": {"include_usage": True}}, "stream_options", "invalid_value"),
        ({"max_tokens": -1}, "max_tokens", "integer_below_min_value"),
        ({"messages": []}, "messages", "unknown_parameter"),
        ({"n": 100, "prompt": ["a", "b"]}, "n", "invalid_value"),
    ],
    ids=lambda v: str(v) if isinstance(v, str) else None,
)
def test_what_it_cannot_do_is_a_400_naming_the_parameter(spool, extra, param, code):
    body = {"prompt": PROMPT, "max_tokens": 3, **extra}
    prompt = body.pop("prompt")
    with pytest.raises(openai.BadRequestError) as caught:
        client(spool).completions.create(model=OFFLINE, prompt=prompt, extra_body=body)
    assert (caught.value.status_code, caught.value.param, caught.value.code) == (400, param, code)
    assert caught.value.body["message"]


def test_an_unknown_model_is_a_404(spool):
    with pytest.raises(openai.NotFoundError) as caught:
        client(spool).completions.create(model="no-such-engine", prompt=PROMPT)
    assert caught.value.code == "model_not_found"


@pytest.mark.cluster
def test_cancel_ends_a_running_stream_and_the_job_reads_on_through_the_jobs_api(spool):
    sdk = client(spool)
    raw = sdk.completions.with_raw_response.create(
        model=OFFLINE, prompt=PROMPT, max_tokens=2000, logit_bias=NO_EOT, stream=True
    )
    job_id = raw.headers["x-spool-job-id"]
    completion_id = "cmpl-" + uuid.UUID(job_id).hex
    chunks = iter(raw.parse())
    seen = next(chunks).choices[0].text
    cancelled = sdk.post(f"/completions/{completion_id}/cancel", cast_to=object, body={})
    assert cancelled["id"] == completion_id and cancelled["status"] == "cancelled"
    assert cancelled["object"] == "text_completion"
    assert cancelled["choices"][0]["finish_reason"] == "cancelled"
    assert cancelled["choices"][0]["text"].startswith(seen)
    with pytest.raises(openai.APIError, match="cancelled"):
        for _ in chunks:
            pass
    again = sdk.post(f"/completions/{completion_id}/cancel", cast_to=object, body={})
    assert again["status"] == "cancelled" and again["choices"] == cancelled["choices"]
    # The job behind it resumes from any chunk on the jobs API (X-Spool-Job-Id).
    headers = {"Authorization": f"Bearer {spool.alice.secret_key}"}
    page = httpx.get(f"{spool.base_url}/v1/jobs/{job_id}/chunks?after=0", headers=headers, timeout=30).json()
    assert page["done"] and page["chunks"][0]["seq"] == 1 and page["chunks"][-1]["type"] == "error"


def test_another_users_completion_cannot_be_cancelled(spool):
    raw = client(spool).completions.with_raw_response.create(model=OFFLINE, prompt=PROMPT, max_tokens=2)
    completion_id = raw.parse().id
    with pytest.raises(openai.NotFoundError):
        client(spool, spool.bob).post(f"/completions/{completion_id}/cancel", cast_to=object, body={})


# ---- through an upstream engine ---------------------------------------------------------------


@pytest.fixture
def upstream_model(upstream, pg):
    def make(scenario: str) -> tuple[str, str]:
        key = uuid.uuid4().hex
        return upstream_engine(
            f"legacy-{key[:8]}", upstream, f"{scenario}{'&' if '?' in scenario else '?'}key={key}"
        ), key

    return make


def test_an_upstream_engine_serves_it_from_its_servers_completions(spool, upstream, upstream_model):
    model, key = upstream_model("fake?tokens=5")
    done = client(spool).completions.create(
        model=model, prompt=["Hello", "World"], suffix=" The end.", max_tokens=4, logprobs=2, user="u1"
    )
    (sent,) = fakeupstream.recorded(upstream, key)
    assert sent["path"].endswith("/completions") and not sent["path"].endswith("/chat/completions")
    body = sent["body"]
    assert body["prompt"] == ["Hello", "World"] and body["suffix"] == " The end."
    assert body["logprobs"] == 2 and body["max_tokens"] == 4 and body["user"] == "u1"
    assert "messages" not in body
    assert [c.index for c in done.choices] == [0, 1]
    assert all(c.finish_reason == "length" for c in done.choices)
    for c in done.choices:
        assert "".join(c.logprobs.tokens) == c.text and len(c.logprobs.tokens) == 4
        assert all(len(top) == 2 for top in c.logprobs.top_logprobs)


def test_an_upstream_completion_streams_and_echoes(spool, upstream, upstream_model):
    model, _ = upstream_model("echo")
    texts, reasons, _ = _streamed(
        client(spool).completions.create(model=model, prompt="one two three", echo=True, stream=True)
    )
    assert texts == {0: "one two three" + "one two three"} and reasons == {0: "stop"}
