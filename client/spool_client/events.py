"""Typed events of a job's stream, and the assembler that makes them from server-sent events."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Union

from spool_client.sse import ServerSentEvent


@dataclass(frozen=True, slots=True)
class ContentDelta:
    text: str
    choice: int = 0
    seq: int | None = None
    logprobs: list[dict[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class ThinkingDelta:
    text: str
    choice: int = 0
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of tool call `index`: the first carries id and name, later ones more arguments."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    choice: int = 0
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete tool call, assembled from its fragments; yielded just before Finish."""

    id: str
    name: str
    arguments: str
    index: int = 0
    choice: int = 0

    def parsed_arguments(self) -> Any:
        return json.loads(self.arguments or "{}")


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int
    estimated: bool = False
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class Finish:
    """The generation ended normally; `reason` is choice 0's (stop, length, tool_calls, ...)."""

    reason: str
    choices: list[str] | None = None
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class Error:
    """The job failed or was cancelled (code "cancelled"); its last chunk."""

    code: str
    message: str
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class Result:
    """The final job (GET /v1/jobs/{id}), sent once the log has ended."""

    job: dict[str, Any] = field(repr=False)

    @property
    def id(self) -> str:
        return self.job["id"]

    @property
    def status(self) -> str:
        return self.job["status"]

    @property
    def text(self) -> str:
        choices = (self.job.get("result") or {}).get("choices") or []
        return choices[0]["content"] if choices else ""

    @property
    def tool_calls(self) -> list[ToolCall]:
        choices = (self.job.get("result") or {}).get("choices") or []
        calls = choices[0]["tool_calls"] if choices else []
        return [ToolCall(c["id"], c["name"], c["arguments"], index=i) for i, c in enumerate(calls)]

    @property
    def usage(self) -> dict[str, Any] | None:
        return self.job.get("usage")


@dataclass(frozen=True, slots=True)
class Done:
    """The stream is complete; nothing follows."""


Event = Union[ContentDelta, ThinkingDelta, ToolCallDelta, ToolCall, Usage, Finish, Error, Result, Done]  # noqa: UP007


class EventAssembler:
    """Turns the server's events into typed ones and keeps the tool-call fragments, so a stream
    resumed on a new connection assembles its calls as if it had never been cut."""

    def __init__(self) -> None:
        self._calls: dict[tuple[int, int], dict[str, Any]] = {}

    def feed(self, sse: ServerSentEvent) -> list[Event]:
        if sse.comment is not None:
            return []
        if sse.event in ("chunk", "error") and sse.id is not None:
            return self._chunk(sse.json())
        if sse.event == "result":
            return [Result(sse.json())]
        if sse.event == "done":
            return [Done()]
        return []  # an event this version does not know: skipped, so newer servers stay readable

    def _chunk(self, chunk: dict[str, Any]) -> list[Event]:
        kind, data, seq = chunk["type"], chunk["data"], chunk.get("seq")
        choice = chunk.get("choice", 0)
        if kind == "content":
            return [ContentDelta(data["content"], choice, seq, chunk.get("logprobs"))]
        if kind == "thinking":
            return [ThinkingDelta(data["thinking"], choice, seq)]
        if kind == "tool":
            call = self._calls.setdefault((choice, data["index"]), {"id": "", "name": "", "arguments": ""})
            for key in ("id", "name"):
                if data.get(key):
                    call[key] = data[key]
            call["arguments"] += data.get("arguments", "")
            arguments = data.get("arguments", "")
            return [ToolCallDelta(data["index"], data.get("id"), data.get("name"), arguments, choice, seq)]
        if kind == "usage":
            return [Usage(data["input_tokens"], data["output_tokens"], bool(data.get("estimated")), seq)]
        if kind == "finish":
            calls: list[Event] = [
                ToolCall(call["id"], call["name"], call["arguments"], index=index, choice=choice_)
                for (choice_, index), call in sorted(self._calls.items())
            ]
            return [*calls, Finish(data["finish_reason"], data.get("choices"), seq)]
        if kind == "error":
            return [Error(data.get("code", "error"), data.get("message", ""), seq)]
        return []
