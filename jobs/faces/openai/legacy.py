"""Validates a POST /v1/completions body (OpenAI's legacy completions) with OpenAI's rules and
wording: the face's own fields through its serializer (TextFace), the sampling parameters through
the shared one, and turns it into a GenerationRequest whose `prompt` the engines continue as is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.types import GenerationRequest
from jobs.faces.common.errors import FaceError
from jobs.faces.common.params import MAX_N, build_request, check_storable
from jobs.faces.openai.chat import face_fields, stream_options, tier_class
from jobs.faces.openai.serializers import TextFace

# Parameters jobs.faces.common.params validates the same way for every face.
ENGINE_PARAMS = frozenset(
    {
        "temperature", "top_p", "n", "stop", "max_tokens", "presence_penalty", "frequency_penalty",
        "seed", "logit_bias", "stream", "user",
    }
)  # fmt: skip
# Parameters only this face knows; taken out before the shared validation.
FACE_PARAMS = frozenset(
    {"model", "prompt", "suffix", "echo", "logprobs", "best_of", "stream_options", "service_tier"}
)
# OpenAI's default when max_tokens is left out: a legacy completion is short unless asked.
DEFAULT_MAX_TOKENS = 16


@dataclass(frozen=True, slots=True)
class TextCreate:
    model: str
    request: GenerationRequest
    stream: bool
    options: dict[str, Any]  # kept on the job: stream, include_usage, echo
    priority: str | None  # the class service_tier asks for; None: the face's default


def _best_of(best_of: int | None, n: int) -> None:
    """Spool answers with every choice it generates, so best_of can only equal n."""
    if best_of is None or best_of == n:
        return
    if best_of < n:
        raise FaceError(
            "Invalid value for 'best_of': best_of must be greater than or equal to n.",
            param="best_of",
            code="invalid_value",
        )
    raise FaceError(
        "The 'best_of' parameter above n is not supported: Spool returns every choice it generates; "
        "ask for n choices and rank them yourself.",
        param="best_of",
        code="unsupported_value",
    )


def parse_text_create(body: Any) -> TextCreate:
    face = face_fields(body, ENGINE_PARAMS, FACE_PARAMS, TextFace)
    prompts: list[str] = face["prompt"]
    check_storable("prompt", prompts)
    params = {k: v for k, v in body.items() if k in ENGINE_PARAMS and v is not None}
    # 0 is allowed here (the shared field starts at 1): with echo, the prompt alone, scored.
    nothing_new = type(params.get("max_tokens")) is int and params["max_tokens"] == 0
    if nothing_new:
        del params["max_tokens"]
    else:
        params.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
    logprobs = face.get("logprobs")
    if logprobs is not None:
        # The legacy integer: the sampled token's log-probability and this many alternatives.
        params.update(logprobs=True, top_logprobs=logprobs)
    request, options = build_request([], params, known=ENGINE_PARAMS | {"logprobs", "top_logprobs"},
                                      max_tokens_aliases=("max_tokens",))  # fmt: skip
    _best_of(face.get("best_of"), request.n)
    if request.n * len(prompts) > MAX_N:
        raise FaceError(
            f"Invalid 'n': n times the number of prompts is {request.n * len(prompts)}; at most {MAX_N} "
            "choices are generated per request.",
            param="n",
            code="invalid_value",
        )
    echo = bool(face.get("echo"))
    if nothing_new:
        request.max_tokens = 0
    # The echoed prompt then carries its own tokens' log-probabilities, which the engine reports.
    request.prompt_logprobs = echo and logprobs is not None
    request.prompt = prompts
    request.suffix = face.get("suffix")
    include_usage = stream_options(face.get("stream_options"), options.stream)
    kept = {"stream": options.stream, "include_usage": include_usage, "echo": echo}
    return TextCreate(face["model"], request, options.stream, kept, tier_class(face.get("service_tier")))
