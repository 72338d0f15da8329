"""Reshapes the model's next-token probabilities by a request's knobs, then samples and scores."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from engine.offline.tokenizer import Tokenizer
from engine.types import GenerationRequest

# OpenAI reports this instead of -inf for tokens the sampler could not pick; JSON has no -inf.
MIN_LOGPROB = -9999.0
_FIRST_THRESHOLD = 5e-2
_THRESHOLD_STEP = 0.1
_LAST_THRESHOLD = 1e-300


@dataclass(frozen=True, slots=True)
class Knobs:
    temperature: float
    top_p: float
    presence_penalty: float
    frequency_penalty: float
    bias_ids: np.ndarray
    bias_factor: np.ndarray  # exp(bias): adding to a logit multiplies the probability

    @classmethod
    def from_request(cls, request: GenerationRequest) -> Knobs:
        ids = np.fromiter(request.logit_bias.keys(), dtype=np.intp, count=len(request.logit_bias))
        bias = np.fromiter(request.logit_bias.values(), dtype=float, count=len(request.logit_bias))
        return cls(
            temperature=float(request.temperature),
            top_p=float(request.top_p),
            presence_penalty=float(request.presence_penalty),
            frequency_penalty=float(request.frequency_penalty),
            bias_ids=ids,
            bias_factor=np.exp(bias),
        )


@dataclass(frozen=True, slots=True)
class Step:
    """One step's distributions over the whole vocabulary, each summing to 1."""

    sample: np.ndarray  # what the next token is drawn from (one-hot at temperature 0)
    report: np.ndarray  # what logprobs are read from


def shape(probs: np.ndarray, counts: Mapping[int, int], knobs: Knobs) -> Step:
    """Applies penalties, logit_bias, temperature and top_p to model probabilities, in that order.

    counts: how often each token already appears in this choice's completion.
    """
    p = probs.copy()
    if counts and (knobs.presence_penalty or knobs.frequency_penalty):
        ids = np.fromiter(counts.keys(), dtype=np.intp, count=len(counts))
        seen = np.fromiter(counts.values(), dtype=float, count=len(counts))
        # OpenAI's rule on logits: logit -= count * frequency + (count > 0) * presence. Working on
        # probabilities, subtracting from a logit is multiplying by exp(-that).
        p[ids] *= np.exp(-(seen * knobs.frequency_penalty + knobs.presence_penalty))
    if knobs.bias_ids.size:
        p[knobs.bias_ids] *= knobs.bias_factor
    p /= p.sum()

    if knobs.temperature == 0:
        # Greedy: the pick is the argmax. Reported logprobs come from the temperature-1
        # distribution after penalties and bias, because a one-hot would report 0 for every pick.
        one_hot = np.zeros_like(p)
        one_hot[int(np.argmax(p))] = 1.0
        return Step(sample=one_hot, report=p)
    if knobs.temperature != 1:
        with np.errstate(divide="ignore"):
            logits = np.log(p) / knobs.temperature
        p = np.exp(logits - logits.max())
        p /= p.sum()
    if knobs.top_p < 1:
        p = _nucleus(p, knobs.top_p)
    return Step(sample=p, report=p)


def _nucleus(p: np.ndarray, top_p: float) -> np.ndarray:
    # Keeps every token at least as likely as the one where the sorted cumulative mass first
    # reaches top_p, ties included, so the kept set does not depend on sort order.
    head = _ranked(p, mass=top_p)
    mass = np.cumsum(p[head])
    cut = p[head[min(int(np.searchsorted(mass, top_p)), head.size - 1)]]
    kept = np.where(p >= cut, p, 0.0)
    return kept / kept.sum()


def _ranked(p: np.ndarray, *, count: int = 0, mass: float = 0.0) -> np.ndarray:
    """Ids of the most likely tokens, most likely first (ties by id): at least `count` of them,
    and enough to hold `mass` probability.

    Sorting the whole vocabulary (or argpartition, which crawls through the model's thousands of
    equal tail probabilities) costs more than the rest of a step. Instead take everything above a
    threshold and lower it until the head is big enough. Usually one or two passes do it.
    """
    positive = int(np.count_nonzero(p))
    if positive <= count:
        ids = np.flatnonzero(p)
        ids = ids[np.argsort(-p[ids], kind="stable")]
        # Too few possible tokens: fill with impossible ones in id order.
        return np.concatenate([ids, np.flatnonzero(p == 0)[: count - positive]])
    threshold = float(p.max()) * _FIRST_THRESHOLD
    while True:
        ids = np.flatnonzero(p >= threshold)
        if ids.size >= count and p[ids].sum() >= mass:
            break
        if threshold < _LAST_THRESHOLD:
            ids = np.flatnonzero(p)
            break
        threshold *= _THRESHOLD_STEP
    # flatnonzero lists ids in order, so a stable sort breaks ties by id.
    return ids[np.argsort(-p[ids], kind="stable")]


def draw(step: Step, rng: np.random.Generator) -> int:
    """Inverse-CDF draw. A token with zero probability can never be picked."""
    cdf = np.cumsum(step.sample)
    i = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
    if i >= cdf.size:
        # Rounding put the draw at the very top: take the last token that can be picked.
        i = int(np.flatnonzero(step.sample)[-1])
    return i


def pick(step: Step, rng: np.random.Generator, temperature: float) -> int:
    if temperature == 0:
        return int(np.argmax(step.sample))
    return draw(step, rng)


def logprob_entry(tokenizer: Tokenizer, step: Step, token: int, top: int) -> dict:
    """OpenAI's per-token logprobs entry, with top_logprobs most likely first (ties by id)."""
    report = step.report
    alternatives = []
    if top:
        alternatives = [_scored(tokenizer, report, int(i)) for i in _ranked(report, count=top)[:top]]
    return {**_scored(tokenizer, report, token), "top_logprobs": alternatives}


def _scored(tokenizer: Tokenizer, report: np.ndarray, token: int) -> dict:
    prob = float(report[token])
    logprob = max(float(np.log(prob)), MIN_LOGPROB) if prob > 0 else MIN_LOGPROB
    return {
        "token": tokenizer.token_str(token),
        "logprob": logprob,
        "bytes": tokenizer.token_bytes(token),
    }
