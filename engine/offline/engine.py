"""The built-in offline engine: a small Kneser-Ney trigram model trained on bundled Shakespeare.

logit_bias keys are ids in this engine's own vocabulary, not any OpenAI tokenizer's ids. Look
one up with engine.offline.tokenizer.token_id(" king"). Mind the leading space: " king" and
"king" are different tokens. End-of-text is id 0, so {0: -100} keeps a reply from ending early.
Ids of the 256 byte-fallback tokens at the top of the vocabulary are refused, because the model
never generates them.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncGenerator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.embeddings import MAX_DIMENSIONS, EmbeddingRequest, Embeddings
from engine.offline import corpus
from engine.offline.embedding import embed_text, idf
from engine.offline.model import NGramModel, default_model
from engine.offline.sampling import Knobs, Step, logprob_entry, pick, shape
from engine.offline.scoring import prompt_entries
from engine.offline.stops import StopGuard
from engine.offline.tokenizer import EOT_ID, Tokenizer, default_tokenizer
from engine.types import (
    CONTENT,
    FINISH,
    PROMPT,
    USAGE,
    Chunk,
    GenerationRequest,
    UnsupportedParameter,
)

MODEL_NAME = "spool-offline-ngram"
DEFAULT_MAX_TOKENS = 256
# The width of an embedding when neither the engine's config nor the request sets one.
DEFAULT_EMBEDDING_DIMENSIONS = 1024
# An input longer than this (characters or tokens) is embedded on a thread: at about a
# microsecond a character (python -m bench.embeddings) it would hold the loop for milliseconds.
LONG_INPUT = 4000
MAX_TOP_LOGPROBS = 20
MAX_STOPS = 4
# Sampling is CPU work on the loop that runs every generation of the worker: give the loop back
# once this much time has passed since we last did, so no step holds it much past a millisecond.
# One token of one choice costs about 50 us (about 100 us with top_logprobs 20).
SLICE_SECONDS = 0.0005


@dataclass(slots=True)
class _Choice:
    index: int
    rng: np.random.Generator
    guard: StopGuard[dict[str, Any] | None]
    history: list[int]
    counts: Counter[int] = field(default_factory=Counter)
    generated: int = 0


class _Slicer:
    """Gives the event loop back whenever a slice of CPU time has passed since it last did."""

    __slots__ = ("since",)

    def __init__(self) -> None:
        self.since = time.perf_counter()

    def reset(self) -> None:
        self.since = time.perf_counter()

    async def breathe(self) -> None:
        if time.perf_counter() - self.since > SLICE_SECONDS:
            await asyncio.sleep(0)
            self.since = time.perf_counter()


class OfflineEngine:
    """Engine kind "offline". Config: tokens_per_second (0: as fast as the CPU allows), max_tokens
    (the default when a request sets none), embedding_dimensions (1024: the width of an embedding
    when the request sets none).

    stream() is an async generator for the caller's event loop: paced by the loop's timers, and
    at full speed it gives the loop back every SLICE_SECONDS of sampling. embed() computes hashed
    feature vectors (engine.offline.embedding), giving the loop back between inputs likewise.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.tokens_per_second = float(config.get("tokens_per_second") or 0)
        self.max_tokens = int(config.get("max_tokens") or DEFAULT_MAX_TOKENS)
        self.embedding_dimensions = int(config.get("embedding_dimensions") or DEFAULT_EMBEDDING_DIMENSIONS)
        if not 1 <= self.embedding_dimensions <= MAX_DIMENSIONS:
            raise ValueError(f"embedding_dimensions must be from 1 to {MAX_DIMENSIONS}")
        self._embedding_ready = False

    @property
    def tokenizer(self) -> Tokenizer:
        return default_tokenizer()

    @property
    def model(self) -> NGramModel:
        return default_model()

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "offline",
            "model": MODEL_NAME,
            "vocab_size": self.tokenizer.vocab_size,
            "order": self.model.order,
            "corpus": corpus.DESCRIPTION,
        }

    def check(self, request: GenerationRequest) -> None:
        _text_only(request.messages)
        if request.suffix:
            raise UnsupportedParameter(
                "suffix", "The offline engine continues a text; it cannot fill in text before a suffix."
            )
        if request.tool_choice not in (None, "none", "auto"):
            raise UnsupportedParameter("tool_choice", "The offline engine cannot call tools.")
        if request.tools and request.tool_choice != "none":
            raise UnsupportedParameter("tools", "The offline engine cannot call tools.")
        if request.response_format not in (None, {"type": "text"}):
            raise UnsupportedParameter("response_format", "The offline engine only writes plain text.")
        tok = self.tokenizer
        for token, bias in request.logit_bias.items():
            if not (tok.is_word(token) or token == EOT_ID):
                raise UnsupportedParameter(
                    "logit_bias",
                    f"Token id {token} is not a token the offline model can produce; its ids are "
                    f"0 (end of text) to {tok.first_byte_id - 1}.",
                )
            if not -100 <= bias <= 100:
                raise UnsupportedParameter("logit_bias", "Each bias must be between -100 and 100.")
        if request.temperature < 0:
            raise UnsupportedParameter("temperature", "temperature must be at least 0.")
        if not 0 < request.top_p <= 1:
            raise UnsupportedParameter("top_p", "top_p must be above 0 and at most 1.")
        if request.n < 1:
            raise UnsupportedParameter("n", "n must be at least 1.")
        if request.max_tokens is not None and request.max_tokens < (0 if request.prompt is not None else 1):
            raise UnsupportedParameter("max_tokens", "max_tokens must be at least 1.")
        if request.prompt_logprobs and request.prompt is None:
            raise UnsupportedParameter("prompt_logprobs", "Only legacy prompts can be scored.")
        if len(request.stop) > MAX_STOPS:
            raise UnsupportedParameter("stop", f"At most {MAX_STOPS} stop sequences are allowed.")
        if not 0 <= request.top_logprobs <= MAX_TOP_LOGPROBS:
            raise UnsupportedParameter(
                "top_logprobs", f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}."
            )

    def prompt_tokens(self, request: GenerationRequest) -> int:
        return sum(self.tokenizer.count_tokens(text) for text in _prompt_texts(request))

    def prompt_context(self, request: GenerationRequest, prompt: int = 0) -> list[int]:
        """Where generation starts: the last in-vocabulary tokens of the last user message (or of
        legacy prompt number `prompt`), so the reply continues it. Trailing marks are skipped:
        after a '?' the corpus mostly ends a speech, and the reply would end before it began. No
        usable words: a document start."""
        tok = self.tokenizer
        if request.prompt is not None:
            text = request.prompt[prompt]
        else:
            last_user = next((m for m in reversed(request.messages) if m.get("role") == "user"), None)
            text = _text(last_user or {})
        ids = [i for i in tok.encode(text) if tok.is_word(i)]
        while ids and not any(c.isalnum() for c in tok.token_str(ids[-1])):
            ids.pop()
        need = self.model.order - 1
        return [EOT_ID] * max(0, need - len(ids)) + ids[-need:]

    def distribution(
        self, request: GenerationRequest, context: Sequence[int], generated: Sequence[int] = ()
    ) -> Step:
        """The exact next-token distributions after all request knobs, for a choice that started
        from context and has generated these ids so far: .sample is what the token is drawn from,
        .report is what its logprobs are read from."""
        history = [*context, *generated]
        return shape(self.model.probs(history), Counter(generated), Knobs.from_request(request))

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[Chunk, None]:
        self.check(request)
        loop = asyncio.get_running_loop()
        slicer = _Slicer()
        tok, model = self.tokenizer, self.model
        knobs = Knobs.from_request(request)
        limit = request.max_tokens if request.max_tokens is not None else self.max_tokens
        top = request.top_logprobs if request.logprobs else 0
        contexts = [self.prompt_context(request, p) for p in range(len(request.prompt or [None]))]
        choices: list[_Choice] = []
        for i in range(request.choice_count):
            await slicer.breathe()  # each generator costs about 50 us: a large n adds up
            context = contexts[i // request.n]
            choices.append(_Choice(i, _rng(request.seed, i), StopGuard(request.stop), list(context)))
        for p, text in enumerate((request.prompt or []) if request.prompt_logprobs else []):
            scores = []
            for score in prompt_entries(tok, model, text, top):
                await slicer.breathe()  # a long prompt is many distributions to compute
                scores.append(score)
            yield Chunk(PROMPT, {"prompt": p, "content": text}, logprobs=scores)
        interval = 1 / self.tokens_per_second if self.tokens_per_second > 0 else 0.0
        next_step = loop.time()
        active = list(choices) if limit > 0 else []
        for choice in choices if limit == 0 else []:
            # max_tokens 0: the prompt alone (with echo, its score) is the answer.
            yield Chunk(FINISH, {"finish_reason": "length"}, choice=choice.index)
        first = True
        while active:
            if interval and not first:
                # Deadline pacing: slow consumers and slow steps do not add drift.
                next_step += interval
                await asyncio.sleep(max(0.0, next_step - loop.time()))
                slicer.reset()
            first = False
            for choice in list(active):
                # Checked before every token of every choice, so a large n cannot hold the loop
                # for a whole step either.
                await slicer.breathe()
                step = shape(model.probs(choice.history[-model.order :]), choice.counts, knobs)
                token = pick(step, choice.rng, knobs.temperature)
                if token == EOT_ID:
                    for chunk in _content(choice, choice.guard.flush()):
                        yield chunk
                    yield Chunk(FINISH, {"finish_reason": "stop"}, choice=choice.index)
                    active.remove(choice)
                    continue
                choice.generated += 1
                choice.history.append(token)
                choice.counts[token] += 1
                entry = logprob_entry(tok, step, token, top) if request.logprobs else None
                released, stopped = choice.guard.push(tok.token_str(token), entry)
                for chunk in _content(choice, released):
                    yield chunk
                if stopped or choice.generated >= limit:
                    if not stopped:
                        for chunk in _content(choice, choice.guard.flush()):
                            yield chunk
                    reason = "stop" if stopped else "length"
                    yield Chunk(FINISH, {"finish_reason": reason}, choice=choice.index)
                    active.remove(choice)
        input_tokens = 0
        for text in _prompt_texts(request):
            await slicer.breathe()  # a long conversation is a lot of text to count
            input_tokens += tok.count_tokens(text)
        yield Chunk(
            USAGE,
            {"input_tokens": input_tokens, "output_tokens": sum(c.generated for c in choices)},
        )

    async def embed(self, request: EmbeddingRequest) -> Embeddings:
        if not self._embedding_ready:
            # Building the tokenizer and the corpus's word counts takes about 0.1 s, once per
            # process: on a thread, not on the loop that serves every other request meanwhile.
            await asyncio.to_thread(lambda: (self.tokenizer, idf("")))
            self._embedding_ready = True
        tok = self.tokenizer
        for i, item in enumerate(request.inputs):
            if isinstance(item, list) and max(item) >= tok.vocab_size:
                raise UnsupportedParameter(
                    f"input[{i}]",
                    f"Input {i} holds token id {max(item)}; the offline engine's ids are 0 to "
                    f"{tok.vocab_size - 1}.",
                )
        dimensions = request.dimensions or self.embedding_dimensions
        vectors = np.empty((len(request.inputs), dimensions), dtype=np.float32)
        tokens = 0
        slicer = _Slicer()
        for i, item in enumerate(request.inputs):
            await slicer.breathe()
            if len(item) > LONG_INPUT:
                vectors[i], counted = await asyncio.to_thread(_embed_one, tok, item, dimensions)
            else:
                vectors[i], counted = _embed_one(tok, item, dimensions)
            tokens += counted
        return Embeddings(vectors=vectors, input_tokens=tokens)


def _embed_one(tok: Tokenizer, item: str | list[int], dimensions: int) -> tuple[np.ndarray, int]:
    """One input's vector and its token count."""
    if isinstance(item, str):
        return embed_text(item, dimensions), tok.count_tokens(item)
    return embed_text(tok.decode(item), dimensions), len(item)


def _content(choice: _Choice, released: list[tuple[str, dict[str, Any] | None]]) -> Iterator[Chunk]:
    for text, entry in released:
        yield Chunk(
            CONTENT,
            {"content": text},
            choice=choice.index,
            logprobs=[entry] if entry is not None else None,
        )


def _rng(seed: int | None, index: int) -> np.random.Generator:
    if seed is None:
        return np.random.default_rng()
    # SeedSequence mixes the seed and the choice index into independent streams, identical in
    # every process (unlike anything based on hash()).
    return np.random.default_rng([seed % 2**64, index])


def _text_only(messages: list[dict[str, Any]]) -> None:
    """The model reads text: an image, audio or file part is refused, naming it, rather than
    dropped from the prompt without a word."""
    for i, message in enumerate(messages):
        content = message.get("content")
        for j, part in enumerate(content if isinstance(content, list) else []):
            if not isinstance(part, dict):
                raise UnsupportedParameter(
                    f"messages[{i}].content[{j}]", f"a content part is an object with a type, not {part!r}."
                )
            kind = part.get("type")
            if kind not in ("text", "refusal"):
                raise UnsupportedParameter(
                    f"messages[{i}].content[{j}]",
                    f"the offline engine reads text only; it cannot take a '{kind}' content part.",
                )


def _prompt_texts(request: GenerationRequest) -> list[str]:
    """What the engine reads: the legacy prompts, else every message's text."""
    return list(request.prompt) if request.prompt is not None else [_text(m) for m in request.messages]


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""
