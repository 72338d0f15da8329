"""Embeddings: the request, the result, the checks every engine shares, and embed(), the one call
that asks an engine for them (an engine that cannot embed is refused with EmbeddingsUnsupported)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from engine.types import EngineError, UnsupportedParameter

# OpenAI's limit on the inputs of one request.
MAX_INPUTS = 2048
# The widest vector an engine is asked for (OpenAI's largest model has 3072).
MAX_DIMENSIONS = 4096
ENCODINGS = ("float", "base64")

# A text, or a text already turned into the engine's own token ids.
Input = str | list[int]


@dataclass(slots=True)
class EmbeddingRequest:
    """What to embed. encoding_format is how an upstream is asked to send the vectors (base64 is
    a quarter of the bytes); the result is floats either way."""

    inputs: list[Input]
    dimensions: int | None = None
    user: str | None = None
    encoding_format: str = "float"


@dataclass(slots=True)
class Embeddings:
    """One float32 row per input, in the order of the inputs; input_tokens is estimated when the
    engine had to count them itself without its model's tokenizer."""

    vectors: np.ndarray
    input_tokens: int
    estimated: bool = False


class EmbeddingsUnsupported(EngineError):
    """The engine cannot compute embeddings at all (faces answer 400, naming the engine)."""

    code = "embeddings_unsupported"


class InvalidInput(UnsupportedParameter):
    """A request no engine accepts; code is OpenAI's word for what is wrong."""

    def __init__(self, param: str, message: str, code: str = "invalid_value") -> None:
        super().__init__(param, message)
        self.code = code


class Embedder(Protocol):
    """An engine that embeds. embed() runs on the caller's event loop; like stream(), each step
    between two awaits must be short. It raises UnsupportedParameter before any work for what it
    cannot honour, EngineError when it fails."""

    async def embed(self, request: EmbeddingRequest) -> Embeddings: ...


def check(request: EmbeddingRequest) -> None:
    """What no engine accepts, as InvalidInput naming the parameter: every face and engine keeps
    to the same rules (faces check their own shapes first)."""
    inputs = request.inputs
    if not inputs:
        raise InvalidInput("input", "There is nothing to embed: give at least one input.", "empty_array")
    if len(inputs) > MAX_INPUTS:
        raise InvalidInput(
            "input",
            f"Too many inputs: {len(inputs)}; at most {MAX_INPUTS} may be embedded in one request.",
            "array_above_max_length",
        )
    for i, item in enumerate(inputs):
        where = f"input[{i}]"
        if isinstance(item, str):
            if not item:
                raise InvalidInput(where, f"Input {i} is an empty string: there is nothing to embed.")
        elif not item:
            raise InvalidInput(where, f"Input {i} is an empty array of tokens: there is nothing to embed.")
        elif any(isinstance(t, bool) or not isinstance(t, int) or t < 0 for t in item):
            raise InvalidInput(where, f"Input {i} holds something other than token ids (integers >= 0).")
    if request.dimensions is not None and not 1 <= request.dimensions <= MAX_DIMENSIONS:
        raise InvalidInput("dimensions", f"dimensions must be from 1 to {MAX_DIMENSIONS}.")
    if request.encoding_format not in ENCODINGS:
        raise InvalidInput("encoding_format", "encoding_format must be 'float' or 'base64'.")


async def embed(engine: object, request: EmbeddingRequest) -> Embeddings:
    """The engine's embeddings of the request's inputs; EmbeddingsUnsupported for an engine that
    has no embed()."""
    embedder = getattr(engine, "embed", None)
    if embedder is None:
        raise EmbeddingsUnsupported("This engine cannot compute embeddings.")
    check(request)
    result: Embeddings = await embedder(request)
    return result
