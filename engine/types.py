"""The request an engine serves, the canonical chunks it yields, and the Engine protocol.

Every API face renders these chunks; no engine knows about HTTP faces.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import asdict, dataclass, field
from typing import Any, NotRequired, Protocol, TypedDict

# Chunk types. An engine yields CONTENT, TOOL, THINKING (any choice), one FINISH per choice and
# one USAGE. The job runner turns the per-choice FINISH chunks into the single terminal FINISH of
# the log, so every job log ends with exactly one FINISH or ERROR.
CONTENT = "content"
TOOL = "tool"
THINKING = "thinking"
USAGE = "usage"
FINISH = "finish"
ERROR = "error"
PROMPT = "prompt"
TERMINAL_TYPES = frozenset({FINISH, ERROR})


class ChunkDict(TypedDict):
    """A Chunk as it travels once an engine has yielded it: in a job's Redis log, in Postgres
    (Job.chunks), into the result and out to every face (see Chunk for `data` by type)."""

    type: str
    data: dict[str, Any]
    choice: NotRequired[int]  # only for choices after the first
    logprobs: NotRequired[list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of output.

    data by type:
      content  {"content": "text"}
      tool     {"index": i, "id": "call_...", "name": "fn"}  first fragment of tool call i
               {"index": i, "arguments": "..."}              later fragments (arguments delta)
               (a first fragment may also carry "arguments")
      thinking {"thinking": "text"}
      usage    {"input_tokens": n, "output_tokens": m} (+ "estimated": true when counted by us)
      finish   {"finish_reason": "stop" | "length" | "tool_calls" | ...}
      error    {"code": "engine_error" | "upstream_error" | "cancelled" | ..., "message": "..."}
      prompt   {"prompt": p, "content": "text"}  legacy prompt p as scored, only under
               prompt_logprobs, before any content; its logprobs are the prompt's tokens (the
               first without a logprob: nothing precedes it)
    logprobs: for content chunks when requested, OpenAI's per-token entries
      [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}].
    """

    type: str
    data: dict[str, Any]
    choice: int = 0
    logprobs: list[dict[str, Any]] | None = None

    def to_dict(self) -> ChunkDict:
        out: ChunkDict = {"type": self.type, "data": self.data}
        if self.choice:
            out["choice"] = self.choice
        if self.logprobs is not None:
            out["logprobs"] = self.logprobs
        return out

    @classmethod
    def from_dict(cls, raw: ChunkDict) -> Chunk:
        return cls(
            type=raw["type"],
            data=raw["data"],
            choice=raw.get("choice", 0),
            logprobs=raw.get("logprobs"),
        )


@dataclass(slots=True)
class GenerationRequest:
    """What to generate. messages are OpenAI chat messages (role, content, tool_calls, ...)."""

    messages: list[dict[str, Any]]
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    # token id -> bias in [-100, 100]; ids are the engine's own vocabulary ids
    logit_bias: dict[int, float] = field(default_factory=dict)
    logprobs: bool = False
    top_logprobs: int = 0
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    # OpenAI's legacy completions: texts to continue as they are (no chat template), in place of
    # messages; choice p * n + j is the j-th continuation of prompt p. suffix comes after the
    # inserted text.
    prompt: list[str] | None = None
    suffix: str | None = None
    prompt_logprobs: bool = False  # legacy echo with logprobs: a PROMPT chunk per prompt first

    @property
    def choice_count(self) -> int:
        """How many choices the engine yields: n, or n per prompt."""
        return self.n * len(self.prompt) if self.prompt is not None else self.n

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["logit_bias"] = {str(k): v for k, v in self.logit_bias.items()}
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> GenerationRequest:
        values = dict(raw)
        values["logit_bias"] = {int(k): float(v) for k, v in (raw.get("logit_bias") or {}).items()}
        values["stop"] = list(raw.get("stop") or [])
        values["tools"] = list(raw.get("tools") or [])
        return cls(**values)


class EngineError(Exception):
    """An engine failed in a way worth telling the client; code is a short machine-readable word."""

    code = "engine_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class UnsupportedParameter(EngineError):
    """The engine cannot honour a parameter; raised before any chunk so faces can answer 400."""

    code = "unsupported_parameter"

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


class Engine(Protocol):
    """An engine turns a request into canonical chunks.

    stream() returns an async generator of chunks, run on the caller's event loop. A cancelled
    job stops the work by closing it (aclose()) or by cancelling the task consuming it; consume it
    inside contextlib.aclosing() so that a cancel arriving between chunks closes it too, rather
    than whenever the generator is garbage collected. Each step between two awaits must be short
    (about a millisecond at most): one loop runs every generation of a worker process, and a
    step that holds it delays them all. stream() raises UnsupportedParameter (from check(), before
    any chunk) for parameters it cannot honour, and EngineError (or any exception) when
    generation fails. check() and describe() are plain calls that do no I/O.

    An engine that can embed also has embed() (engine.embeddings.Embedder); one without it is
    refused by engine.embeddings.embed with EmbeddingsUnsupported.
    """

    def check(self, request: GenerationRequest) -> None: ...

    def stream(self, request: GenerationRequest) -> AsyncGenerator[Chunk, None]: ...

    def describe(self) -> dict[str, Any]:
        """A small, secret-free description for GetModelAPI and /v1/models."""
        ...
