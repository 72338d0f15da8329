"""Folds canonical chunks into a job's final result: text, tool calls, thinking per choice."""

from __future__ import annotations

from engine.types import CONTENT, THINKING, TOOL, ChunkDict
from jobs.types import ChoiceResult, JobResult, ToolCallResult, Usage


class ResultBuilder:
    def __init__(self, n: int) -> None:
        self._content: list[list[str]] = [[] for _ in range(n)]
        self._thinking: list[list[str]] = [[] for _ in range(n)]
        self._tools: list[dict[int, ToolCallResult]] = [{} for _ in range(n)]

    def _grow(self, choice: int) -> None:
        while choice >= len(self._content):
            self._content.append([])
            self._thinking.append([])
            self._tools.append({})

    def add(self, chunk: ChunkDict) -> None:
        choice = chunk.get("choice", 0)
        self._grow(choice)
        data = chunk["data"]
        if chunk["type"] == CONTENT:
            self._content[choice].append(data["content"])
        elif chunk["type"] == THINKING:
            self._thinking[choice].append(data["thinking"])
        elif chunk["type"] == TOOL:
            call = self._tools[choice].setdefault(data["index"], {"id": "", "name": "", "arguments": ""})
            if "id" in data:
                call["id"] = data["id"]
            if "name" in data:
                call["name"] = data["name"]
            call["arguments"] += data.get("arguments", "")

    def build(self, finish_reasons: list[str | None], usage: Usage | None) -> JobResult:
        choices: list[ChoiceResult] = []
        for i, parts in enumerate(self._content):
            choices.append(
                {
                    "content": "".join(parts),
                    "thinking": "".join(self._thinking[i]),
                    "tool_calls": [self._tools[i][k] for k in sorted(self._tools[i])],
                    "finish_reason": finish_reasons[i] if i < len(finish_reasons) else None,
                }
            )
        return {"choices": choices, "usage": usage}
