"""Shapes that travel between the modules of the app: a job's final result and the live meta
a read of a running job is built from. (The chunk is engine.types.ChunkDict.)"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class Usage(TypedDict):
    input_tokens: int
    output_tokens: int
    estimated: NotRequired[bool]  # counted by Spool, not reported by the engine


class ToolCallResult(TypedDict):
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it


class ChoiceResult(TypedDict):
    content: str
    thinking: str
    tool_calls: list[ToolCallResult]
    finish_reason: str | None


class JobResult(TypedDict):
    """Job.result: what the worker folded the chunks into, one entry per choice."""

    choices: list[ChoiceResult]
    usage: Usage | None


class EngineRef(TypedDict):
    id: str
    name: str
    kind: str
    limited: NotRequired[bool]  # Engine.is_limited (not in metas written before it was added)


class LiveMeta(TypedDict):
    """<prefix>:job:{<id>}:meta in Redis: what job_create writes so that polling or streaming a
    live job reads Redis only (jobs.selectors builds the Job from it)."""

    owner: int
    engine: EngineRef
    room: str | None
    face: str
    created: str  # ISO time
    request: dict[str, Any]  # the engine request without its messages
    options: dict[str, Any]
