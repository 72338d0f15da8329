"""Canonical chunks -> OpenAI chat.completion.chunk objects, and a finished job -> chat.completion."""

from __future__ import annotations

import uuid
from typing import Any

from engine.types import CONTENT, ERROR, FINISH, THINKING, TOOL, USAGE, ChunkDict
from jobs.jobview import JobView
from jobs.protocols.openai_errors import error_body, stream_error_type
from jobs.protocols.service_tiers import served_tier

ID_PREFIX = "chatcmpl-"
# Thinking has no field in OpenAI's chat API; this is the name DeepSeek, vLLM and others use, and
# the SDK keeps unknown fields, so thinking reaches clients instead of being dropped.
THINKING_FIELD = "reasoning_content"


def completion_id(job_id: Any, prefix: str = ID_PREFIX) -> str:
    """The chat completion id of a job (or, with its prefix, the legacy completion's): streamed
    chunks, the JSON answer and the store agree."""
    return prefix + uuid.UUID(str(job_id)).hex


def job_id_of(completion_id: str, prefix: str = ID_PREFIX) -> str | None:
    """The job id inside a completion id, or None when it is not one of ours."""
    if not completion_id.startswith(prefix):
        return None
    try:
        return str(uuid.UUID(hex=completion_id.removeprefix(prefix)))
    except ValueError:
        return None


def created_of(job: JobView) -> int:
    return int(job.created_at.timestamp())


def usage(data: dict[str, Any] | None) -> dict[str, Any] | None:
    if data is None:
        return None
    prompt, completion = int(data.get("input_tokens") or 0), int(data.get("output_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def head(job: JobView, obj: str, prefix: str = ID_PREFIX) -> dict[str, Any]:
    """The fields every object of one completion shares."""
    head: dict[str, Any] = {
        "id": completion_id(job.pk, prefix),
        "object": obj,
        "created": created_of(job),
        "model": job.engine.name,
        "system_fingerprint": None,
    }
    tier = served_tier(job.options)
    if tier is not None:
        head["service_tier"] = tier
    return head


def error_event(data: dict[str, Any]) -> dict[str, Any]:
    """The error a stream ends with, from the terminal error chunk's data."""
    code = data.get("code") or "engine_error"
    message = data.get("message") or "The generation failed."
    return error_body(message, type=stream_error_type(code), code=code)


class ChunkStream:
    """What the stream renderers of both completions APIs share: one head on every chunk, usage
    null on each under include_usage and the totals in a last chunk without choices, the error
    a stream ends with. Subclasses feed() canonical chunks; done once the end is rendered."""

    def __init__(self, job: JobView, obj: str, prefix: str = ID_PREFIX) -> None:
        self.head = head(job, obj, prefix)
        self.include_usage = bool(job.options.get("include_usage"))
        self.usage: dict[str, Any] | None = None
        self.done = False

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        out = {**self.head, "choices": choices, **extra}
        if self.include_usage and "usage" not in out:
            out["usage"] = None
        return out

    def _end(self, kind: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        """The usage chunk after the last finish (under include_usage), or the error event."""
        self.done = True
        if kind == ERROR:
            return [error_event(data)]
        return [self._chunk([], usage=usage(self.usage))] if self.include_usage else []


class StreamRenderer(ChunkStream):
    """Turns a job's canonical chunks, in order, into the chunk objects OpenAI would send.

    It keeps the wire rules: role only in each choice's first delta, choices first appearing in
    ascending index order, tool-call id/type/name only in the first fragment of each index,
    finish_reason only on a choice's last chunk, usage only under include_usage.
    """

    def __init__(self, job: JobView) -> None:
        super().__init__(job, "chat.completion.chunk")
        self.opened = 0  # choices 0 .. opened-1 have had their role delta
        self.announced: set[tuple[int, int]] = set()  # (choice, tool index) first fragments sent

    def _choice(
        self, index: int, delta: dict[str, Any], *, logprobs: Any = None, finish: str | None = None
    ) -> dict[str, Any]:
        return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}

    def _open(self, choice: int, first_is_tool: bool = False) -> list[dict[str, Any]]:
        """Role deltas for every choice up to this one that has not had its own yet."""
        out = []
        while self.opened <= choice:
            # A reply that starts with a tool call has null content, as in the JSON answer.
            content = None if first_is_tool and self.opened == choice else ""
            delta = {"role": "assistant", "content": content, "refusal": None}
            out.append(self._chunk([self._choice(self.opened, delta)]))
            self.opened += 1
        return out

    def feed(self, raw: ChunkDict) -> list[dict[str, Any]]:
        """The objects to send for one canonical chunk (error bodies included)."""
        kind, data, choice = raw["type"], raw["data"], raw.get("choice", 0)
        if kind == CONTENT:
            out = self._open(choice)
            logprobs = (
                {"content": raw["logprobs"], "refusal": None} if raw.get("logprobs") is not None else None
            )
            out.append(self._chunk([self._choice(choice, {"content": data["content"]}, logprobs=logprobs)]))
            return out
        if kind == THINKING:
            return [
                *self._open(choice),
                self._chunk([self._choice(choice, {THINKING_FIELD: data["thinking"]})]),
            ]
        if kind == TOOL:
            return self._tool(choice, data)
        if kind == USAGE:
            self.usage = data
            return []
        if kind == FINISH:
            return self._finish(data)
        if kind == ERROR:
            return self._end(kind, data)
        return []

    def _tool(self, choice: int, data: dict[str, Any]) -> list[dict[str, Any]]:
        out = self._open(choice, first_is_tool=True)
        key = (choice, data["index"])
        fragment: dict[str, Any] = {"index": data["index"]}
        if key not in self.announced:
            self.announced.add(key)
            fragment["id"] = data.get("id") or ""
            fragment["type"] = "function"
            fragment["function"] = {"name": data.get("name") or "", "arguments": data.get("arguments", "")}
        elif data.get("arguments"):
            fragment["function"] = {"arguments": data["arguments"]}
        else:
            return out  # nothing new for this call
        out.append(self._chunk([self._choice(choice, {"tool_calls": [fragment]})]))
        return out

    def _finish(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        reasons = data.get("choices") or [data.get("finish_reason")]
        out = self._open(len(reasons) - 1)
        for index, reason in enumerate(reasons):
            out.append(self._chunk([self._choice(index, {}, finish=reason)]))
        return out + self._end(FINISH, data)


def logprobs_by_choice(job: JobView) -> dict[int, list[dict[str, Any]]]:
    found: dict[int, list[dict[str, Any]]] = {}
    for raw in job.chunks or []:
        if raw["type"] == CONTENT and raw.get("logprobs") is not None:
            found.setdefault(raw.get("choice", 0), []).extend(raw["logprobs"])
    return found


def message(choice: dict[str, Any]) -> dict[str, Any]:
    """The assistant message of one result choice, in OpenAI's shape."""
    calls = [
        {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
        for c in choice.get("tool_calls") or []
    ]
    text = choice.get("content") or ""
    out: dict[str, Any] = {
        "role": "assistant",
        "content": None if calls and not text else text,
        "refusal": None,
    }
    if calls:
        out["tool_calls"] = calls
    if choice.get("thinking"):
        out[THINKING_FIELD] = choice["thinking"]
    return out


def completion(job: JobView) -> dict[str, Any]:
    """The chat.completion object of a finished job (also what the store keeps)."""
    result = job.result or {}
    wants_logprobs = bool(job.request.get("logprobs"))
    logprobs = logprobs_by_choice(job) if wants_logprobs else {}
    choices = []
    for index, choice in enumerate(result.get("choices") or []):
        choices.append(
            {
                "index": index,
                "message": message(choice),
                "logprobs": {"content": logprobs.get(index, []), "refusal": None} if wants_logprobs else None,
                # A job that failed or was cancelled has no reason of its own per choice.
                "finish_reason": choice.get("finish_reason") or job.finish_reason or None,
            }
        )
    return {
        **head(job, "chat.completion"),
        "choices": choices,
        "usage": usage(result.get("usage") or job.usage),
    }
