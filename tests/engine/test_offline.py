"""Behaviour of the built-in offline n-gram engine, its tokenizer and its sampling knobs."""

from __future__ import annotations

import asyncio
import contextlib
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.offline import OfflineEngine
from engine.offline import tokenizer as tokenizer_module
from engine.offline.corpus import paragraphs
from engine.offline.tokenizer import EOT, EOT_ID, count_tokens, decode, encode, token_id
from engine.types import (
    CONTENT,
    FINISH,
    USAGE,
    GenerationRequest,
    UnsupportedParameter,
)

PROMPT = "Speak to me of the noble king"
NO_END = {EOT_ID: -100.0}  # keeps a reply from ending on its own, so lengths are predictable


def request(**overrides) -> GenerationRequest:
    values = {"messages": [{"role": "user", "content": PROMPT}]}
    values.update(overrides)
    return GenerationRequest(**values)


@pytest.fixture(scope="module")
def engine() -> OfflineEngine:
    return OfflineEngine({})


def run(engine: OfflineEngine, req: GenerationRequest) -> list:
    async def collect() -> list:
        return [chunk async for chunk in engine.stream(req)]

    return asyncio.run(collect())


def contents(chunks, choice: int = 0) -> list:
    return [c for c in chunks if c.type == CONTENT and c.choice == choice]


def text_of(chunks, choice: int = 0) -> str:
    return "".join(c.data["content"] for c in contents(chunks, choice))


def finishes(chunks) -> dict[int, str]:
    return {c.choice: c.data["finish_reason"] for c in chunks if c.type == FINISH}


def generated_ids(chunks, choice: int = 0) -> list[int]:
    return encode(text_of(chunks, choice))


# Tokenizer


def test_tokenizer_round_trips_the_corpus_and_text_it_never_saw():
    samples = [
        "\n\n".join(paragraphs()[:50]),
        "Héllo, wörld! 🙂 tabs\tand  two  spaces\r\nand a trailing space ",
        "<|endoftext|> is only text here, as is <0x41>.",
    ]
    for text in samples:
        assert decode(encode(text)) == text


def test_tokens_carry_their_leading_space():
    tok = tokenizer_module.default_tokenizer()
    pieces = [tok.token_str(i) for i in encode("Before we proceed any further, hear me speak.")]
    assert pieces == [
        "Before",
        " we",
        " proceed",
        " any",
        " further",
        ",",
        " hear",
        " me",
        " speak",
        ".",
    ]


def test_ids_are_ordered_by_descending_corpus_frequency_after_end_of_text():
    tok = tokenizer_module.default_tokenizer()
    assert token_id(EOT) == EOT_ID == 0
    words = tok.frequency[1 : tok.first_byte_id]
    assert words == sorted(words, reverse=True)
    assert token_id("\n") == 1  # the commonest piece in the corpus


def test_text_that_spells_a_special_token_is_not_one():
    ids = encode("<|endoftext|>")
    assert EOT_ID not in ids


def test_count_tokens_counts_what_encode_produces():
    text = "What says the other troop? Zebras, 42 of them."
    assert count_tokens(text) == len(encode(text)) > 0


# Determinism


def test_the_same_seed_gives_the_same_text_and_logprobs(engine):
    req = request(seed=11, max_tokens=40, logprobs=True, top_logprobs=3)
    first, second = run(engine, req), run(engine, req)
    assert [c.to_dict() for c in first] == [c.to_dict() for c in second]
    assert text_of(first)


def test_different_seeds_give_different_text(engine):
    texts = {text_of(run(engine, request(seed=seed, max_tokens=30))) for seed in (1, 2, 3)}
    assert len(texts) == 3


def test_the_same_seed_gives_the_same_text_in_another_process(engine):
    script = (
        "import asyncio\n"
        "from engine.offline import OfflineEngine\n"
        "from engine.types import GenerationRequest\n"
        f"req = GenerationRequest(messages=[{{'role': 'user', 'content': {PROMPT!r}}}],"
        " seed=5, max_tokens=40, n=2)\n"
        "async def main():\n"
        "    return [c async for c in OfflineEngine({}).stream(req)]\n"
        "print(repr([c.to_dict() for c in asyncio.run(main())]))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=True)
    here = [c.to_dict() for c in run(engine, request(seed=5, max_tokens=40, n=2))]
    assert out.stdout.strip() == repr(here)


def test_temperature_zero_is_deterministic_without_a_seed(engine):
    req = request(temperature=0, max_tokens=25)
    assert text_of(run(engine, req)) == text_of(run(engine, req))


# Endings


def test_it_ends_with_length_at_max_tokens(engine):
    chunks = run(engine, request(seed=3, max_tokens=7, logit_bias=NO_END))
    assert len(contents(chunks)) == 7
    assert finishes(chunks) == {0: "length"}
    assert chunks[-1].type == USAGE and chunks[-1].data["output_tokens"] == 7


def test_it_ends_with_stop_when_the_model_reaches_end_of_text(engine):
    chunks = run(engine, request(seed=1, max_tokens=200))
    assert finishes(chunks) == {0: "stop"}
    assert 0 < len(contents(chunks)) < 200
    assert EOT not in text_of(chunks)


def test_it_never_emits_a_stop_sequence_that_spans_tokens(engine):
    base = dict(temperature=0, max_tokens=30, logit_bias=NO_END)
    unstopped = run(engine, request(**base))
    pieces = [c.data["content"] for c in contents(unstopped)]
    # A stop string made of the end of one token and the start of the next.
    i = next(i for i in range(2, len(pieces) - 1) if len(pieces[i]) >= 2 and pieces[i + 1])
    stop = pieces[i][-2:] + pieces[i + 1][:1]
    full = "".join(pieces)
    stopped = run(engine, request(**base, stop=[stop]))
    assert text_of(stopped) == full[: full.index(stop)]
    assert stop not in text_of(stopped)
    assert finishes(stopped) == {0: "stop"}


def test_text_held_back_for_a_stop_that_never_completes_is_still_emitted(engine):
    base = dict(temperature=0, max_tokens=30, logit_bias=NO_END)
    full = text_of(run(engine, request(**base)))
    # Starts like the last token's text but never occurs, so the tail is held until the end.
    never = full[-1] + "\x00never"
    assert text_of(run(engine, request(**base, stop=[never]))) == full


# Several choices


def test_n_choices_each_finish_and_usage_counts_both(engine):
    chunks = run(engine, request(seed=9, n=2, max_tokens=5, logit_bias=NO_END))
    assert len(contents(chunks, 0)) == len(contents(chunks, 1)) == 5
    assert finishes(chunks) == {0: "length", 1: "length"}
    assert [c.type for c in chunks].count(FINISH) == 2
    usage = [c for c in chunks if c.type == USAGE]
    assert usage == [chunks[-1]]
    assert usage[0].data == {"input_tokens": count_tokens(PROMPT), "output_tokens": 10}
    # Interleaved: one token per choice per step.
    assert [c.choice for c in chunks if c.type == CONTENT][:4] == [0, 1, 0, 1]


def test_choices_sample_independently(engine):
    chunks = run(engine, request(seed=9, n=2, max_tokens=20, logit_bias=NO_END))
    assert text_of(chunks, 0) != text_of(chunks, 1)


# logit_bias


def test_logit_bias_of_plus_100_forces_a_token(engine):
    crown = token_id(" crown")
    chunks = run(engine, request(seed=4, max_tokens=5, logit_bias={crown: 100}))
    assert [c.data["content"] for c in contents(chunks)] == [" crown"] * 5


def test_logit_bias_of_minus_100_bans_a_token_greedy_output_would_use(engine):
    base = dict(temperature=0, max_tokens=20)
    greedy = generated_ids(run(engine, request(**base, logit_bias=NO_END)))
    banned = greedy[0]
    biased = generated_ids(run(engine, request(**base, logit_bias={**NO_END, banned: -100})))
    assert banned not in biased
    assert biased


# Penalties


def repeats(ids: list[int]) -> int:
    return len(ids) - len(set(ids))


@pytest.mark.parametrize("penalty", ["presence_penalty", "frequency_penalty"])
def test_a_penalty_reduces_repetition(engine, penalty):
    base = dict(temperature=0, max_tokens=60, logit_bias=NO_END)
    plain = generated_ids(run(engine, request(**base)))
    penalised = generated_ids(run(engine, request(**base, **{penalty: 1.5})))
    assert repeats(penalised) < repeats(plain) // 2


# The distribution it samples from


KNOB_SETS = [
    dict(temperature=0.7),
    dict(temperature=1.4, top_p=0.8),
    dict(top_p=0.5, logit_bias={token_id(" crown"): 5.0, token_id(","): -100.0}),
    dict(temperature=0.9, presence_penalty=1.0, frequency_penalty=0.5, logit_bias=NO_END),
    dict(temperature=0),
]


@pytest.mark.parametrize("knobs", KNOB_SETS)
def test_the_sampled_distribution_sums_to_one_over_the_vocabulary(engine, knobs):
    req = request(**knobs)
    context = engine.prompt_context(req)
    generated = encode(" the king, the king and the")
    step = engine.distribution(req, context, generated)
    vocab = tokenizer_module.default_tokenizer().vocab_size
    for dist in (step.sample, step.report):
        assert dist.shape == (vocab,)
        assert abs(dist.sum() - 1) < 1e-9
        assert (dist >= 0).all()


def test_top_p_keeps_only_the_likely_head(engine):
    req = request(top_p=0.5)
    step = engine.distribution(req, engine.prompt_context(req))
    kept = np.flatnonzero(step.sample)
    dropped = np.flatnonzero(step.sample == 0)
    assert 0 < kept.size < 100
    assert step.sample[kept].min() > 0
    full = engine.distribution(request(), engine.prompt_context(req)).sample
    # What top_p keeps is the most likely head of the untruncated distribution.
    assert full[kept].min() >= full[dropped].max()
    assert full[kept].sum() >= 0.5


def test_returned_logprobs_are_logs_of_the_distribution_sampled_from(engine):
    req = request(
        seed=21,
        max_tokens=40,
        temperature=0.8,
        top_p=0.95,
        presence_penalty=0.4,
        frequency_penalty=0.3,
        logit_bias={token_id(" king"): 2.0},
        logprobs=True,
        top_logprobs=5,
    )
    context = engine.prompt_context(req)
    generated: list[int] = []
    for chunk in contents(run(engine, req)):
        (entry,) = chunk.logprobs
        token = token_id(entry["token"])
        step = engine.distribution(req, context, generated)
        assert step.sample[token] > 0
        assert entry["logprob"] == pytest.approx(math.log(step.sample[token]), abs=1e-12)
        for alt in entry["top_logprobs"]:
            p = step.sample[token_id(alt["token"])]
            assert alt["logprob"] == pytest.approx(math.log(p), abs=1e-12)
        generated.append(token)
    assert generated


def test_temperature_zero_reports_logprobs_of_the_temperature_one_distribution(engine):
    req = request(temperature=0, max_tokens=10, logprobs=True, frequency_penalty=0.5)
    context = engine.prompt_context(req)
    generated: list[int] = []
    for chunk in contents(run(engine, req)):
        (entry,) = chunk.logprobs
        token = token_id(entry["token"])
        step = engine.distribution(req, context, generated)
        assert token == int(np.argmax(step.report))
        assert entry["logprob"] == pytest.approx(math.log(step.report[token]), abs=1e-12)
        generated.append(token)
    assert any(c.logprobs[0]["logprob"] < 0 for c in contents(run(engine, req)))


def test_top_logprobs_are_sorted_and_of_the_requested_length(engine):
    for top in (1, 7, 20):
        chunks = run(engine, request(seed=2, max_tokens=8, logprobs=True, top_logprobs=top))
        for chunk in contents(chunks):
            (entry,) = chunk.logprobs
            alts = entry["top_logprobs"]
            assert len(alts) == top
            values = [a["logprob"] for a in alts]
            assert values == sorted(values, reverse=True)
            assert all(a["bytes"] == list(a["token"].encode()) for a in alts)
            assert entry["bytes"] == list(entry["token"].encode())


def test_logprobs_are_left_out_unless_asked_for(engine):
    assert all(c.logprobs is None for c in contents(run(engine, request(seed=1, max_tokens=5))))


# Prompt conditioning


def test_generation_starts_from_the_last_words_of_the_last_user_message(engine):
    req = request(
        messages=[
            {"role": "user", "content": "an earlier question"},
            {"role": "assistant", "content": "an answer"},
            {"role": "user", "content": [{"type": "text", "text": "Tell me of the noble city?"}]},
        ]
    )
    assert engine.prompt_context(req) == encode(" noble city")


def test_the_prompt_shapes_what_comes_next(engine):
    queen = request(seed=8, max_tokens=8, messages=[{"role": "user", "content": "the queen"}])
    rome = request(seed=8, max_tokens=8, messages=[{"role": "user", "content": "go to Rome"}])
    first_queen = engine.distribution(queen, engine.prompt_context(queen)).sample
    first_rome = engine.distribution(rome, engine.prompt_context(rome)).sample
    assert not np.allclose(first_queen, first_rome)
    assert text_of(run(engine, queen)) != text_of(run(engine, rome))


def test_a_prompt_without_known_words_starts_at_a_document_start(engine):
    req = request(messages=[{"role": "user", "content": "🙂🙂"}])
    assert engine.prompt_context(req) == [EOT_ID, EOT_ID]


def test_prompt_tokens_count_every_message_text(engine):
    req = request(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hail, noble Marcius!"}]},
        ],
        max_tokens=1,
    )
    usage = run(engine, req)[-1]
    assert usage.data["input_tokens"] == count_tokens("Be brief.") + count_tokens("Hail, noble Marcius!")


# Streaming


def test_closing_the_stream_stops_the_work(engine):
    async def main() -> None:
        stream = engine.stream(request(seed=1, max_tokens=200, logit_bias=NO_END))
        first = await anext(stream)
        assert first.type == CONTENT
        await stream.aclose()
        with pytest.raises(StopAsyncIteration):
            await anext(stream)

    asyncio.run(main())


def test_cancelling_the_consuming_task_stops_the_work(engine):
    async def main() -> tuple[list, bool]:
        got: list = []
        reading = asyncio.Event()
        stream = engine.stream(request(seed=1, max_tokens=100_000, logit_bias=NO_END))

        async def consume() -> None:
            async for chunk in stream:
                got.append(chunk)
                reading.set()

        task = asyncio.create_task(consume())
        await reading.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        seen = len(got)
        await asyncio.sleep(0.05)  # a generator still running would keep sampling on this loop
        return got[seen:], stream.ag_frame is None

    after, finished = asyncio.run(main())
    assert after == []
    assert finished  # the cancel ended the generator itself, not only the task reading it


def test_tokens_per_second_paces_the_stream():
    paced = OfflineEngine({"tokens_per_second": 50})
    started = time.monotonic()
    chunks = run(paced, request(seed=1, max_tokens=6, logit_bias=NO_END))
    assert len(contents(chunks)) == 6
    assert time.monotonic() - started >= 5 / 50


def test_other_tasks_on_the_loop_keep_running_while_it_generates_at_full_speed(engine):
    async def main(req: GenerationRequest) -> tuple[list, int, float]:
        wakeups = 0
        longest = 0.0
        done = False

        async def probe() -> None:
            nonlocal wakeups, longest
            last = time.perf_counter()
            while not done:
                await asyncio.sleep(0)
                now = time.perf_counter()
                wakeups += 1
                longest = max(longest, now - last)
                last = now

        task = asyncio.create_task(probe())
        await asyncio.sleep(0)  # the probe starts before the generation does
        wakeups = 0
        chunks = [chunk async for chunk in engine.stream(req)]
        done = True
        await task
        return chunks, wakeups, longest

    for n in (1, 8):
        req = request(seed=1, n=n, max_tokens=2000 // n, logit_bias=NO_END)
        chunks, wakeups, longest = asyncio.run(main(req))
        assert len(contents(chunks)) == 2000 // n
        # A generation that never gave the loop back would let the probe in 0 or 1 times.
        # How often it may is a speed, judged by bench.loop_hold, not here.
        assert wakeups >= 20, f"n={n}: the probe ran {wakeups} times, longest gap {longest * 1000:.1f} ms"


def test_max_tokens_defaults_to_the_configured_value():
    short = OfflineEngine({"max_tokens": 3})
    chunks = run(short, request(seed=1, logit_bias=NO_END))
    assert len(contents(chunks)) == 3
    assert finishes(chunks) == {0: "length"}


# check() and describe()


def test_check_rejects_tools(engine):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    with pytest.raises(UnsupportedParameter) as raised:
        engine.check(request(tools=tools))
    assert raised.value.param == "tools"
    assert str(raised.value) == "The offline engine cannot call tools."
    with pytest.raises(UnsupportedParameter):
        engine.check(request(tool_choice="required"))
    engine.check(request(tools=tools, tool_choice="none"))


def test_stream_rejects_unsupported_parameters_before_any_chunk(engine):
    with pytest.raises(UnsupportedParameter) as raised:
        asyncio.run(anext(engine.stream(request(response_format={"type": "json_object"}))))
    assert raised.value.param == "response_format"
    engine.check(request(response_format={"type": "text"}))


def test_check_rejects_logit_bias_ids_outside_the_vocabulary(engine):
    tok = tokenizer_module.default_tokenizer()
    for bad in (tok.vocab_size, tok.first_byte_id, -1):
        with pytest.raises(UnsupportedParameter) as raised:
            engine.check(request(logit_bias={bad: 1.0}))
        assert raised.value.param == "logit_bias"
    engine.check(request(logit_bias={tok.first_byte_id - 1: 1.0, EOT_ID: -100.0}))


def test_describe_names_the_model_and_its_size(engine):
    info = engine.describe()
    assert info["kind"] == "offline"
    assert info["model"] == "spool-offline-ngram"
    assert info["vocab_size"] == tokenizer_module.default_tokenizer().vocab_size > 1000
    assert info["order"] == 3
    assert "Shakespeare" in info["corpus"]


def test_legacy_prompts_are_each_continued_n_times() -> None:
    engine = OfflineEngine({})
    req = GenerationRequest(messages=[], prompt=["the noble city", "my lord"], n=2, max_tokens=3, seed=4)
    assert engine.prompt_context(req, 1) == engine.prompt_context(
        GenerationRequest(messages=[{"role": "user", "content": "my lord"}])
    )
    chunks = asyncio.run(_collect(engine, req))
    assert sorted(c.choice for c in chunks if c.type == FINISH) == [0, 1, 2, 3]
    usage = [c for c in chunks if c.type == USAGE][0]
    assert usage.data["input_tokens"] == engine.prompt_tokens(req) > 0


def test_a_suffix_is_refused_naming_it() -> None:
    with pytest.raises(UnsupportedParameter) as caught:
        OfflineEngine({}).check(GenerationRequest(messages=[], prompt=["a"], suffix="b"))
    assert caught.value.param == "suffix"


@pytest.mark.parametrize("part", [{"type": "image_url", "image_url": {"url": "x"}}, {"type": "input_audio"}])
def test_a_content_part_it_cannot_read_is_refused_naming_the_part(part: dict) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "what?"}, part]}]
    with pytest.raises(UnsupportedParameter) as caught:
        OfflineEngine({}).check(GenerationRequest(messages=messages))
    assert caught.value.param == "messages[0].content[1]" and part["type"] in str(caught.value)


async def _collect(engine: OfflineEngine, req: GenerationRequest) -> list:
    return [c async for c in engine.stream(req)]
