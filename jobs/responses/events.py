"""A job's chunk log folded into OpenAI Responses stream events and the response object.

The fold is pure: the same log gives the same events with the same sequence numbers, whether it
is read live from Redis or from the Postgres archive, so a stream resumed after sequence number
N re-folds the log from its start and drops the events up to N (nothing repeated, nothing
skipped). The response object a retrieve answers is the fold's snapshot, so it always agrees
with what the stream said.

Events, in order: response.created (and response.queued for a background response) before any
chunk; response.in_progress with the first chunk; per output item output_item.added, for a
message content_part.added and output_text.delta, for a function call
function_call_arguments.delta, and when the item ends its .done events and output_item.done;
then one of response.completed / response.incomplete / response.failed. A cancelled response
ends with response.failed carrying status "cancelled" (OpenAI's stream has no event of its own
for it).
"""

from __future__ import annotations

import uuid
from typing import Any

from engine.types import CONTENT, ERROR, FINISH, TOOL, USAGE, ChunkDict
from jobs.protocols.service_tiers import served_tier
from jobs.responses import (
    CANCELLED,
    COMPLETED,
    CUT_SHORT,
    FAILED,
    IN_PROGRESS,
    INCOMPLETE,
    QUEUED,
    response_id,
    status_of,
)

MESSAGE, FUNCTION_CALL = "message", "function_call"
# Which terminal event ends the stream, by final status.
TERMINAL_EVENT = {
    COMPLETED: "response.completed",
    INCOMPLETE: "response.incomplete",
    FAILED: "response.failed",
    CANCELLED: "response.failed",
}


def usage(data: dict[str, Any] | None) -> dict[str, Any] | None:
    if data is None:
        return None
    given, produced = int(data.get("input_tokens") or 0), int(data.get("output_tokens") or 0)
    return {
        "input_tokens": given,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": produced,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": given + produced,
    }


def head(job: Any) -> dict[str, Any]:
    """The fields of a response that its request fixes (the job's request and options)."""
    options, request = job.options, job.request
    served = served_tier(options)
    return {
        "id": response_id(job.pk),
        "object": "response",
        "created_at": int(job.created_at.timestamp()),
        "model": job.engine.name,
        "background": bool(options.get("background")),
        "instructions": options.get("instructions"),
        "max_output_tokens": request.get("max_tokens"),
        "metadata": options.get("metadata") or {},
        "parallel_tool_calls": options.get("parallel_tool_calls", True),
        "previous_response_id": options.get("previous_response_id"),
        "safety_identifier": options.get("safety_identifier"),
        "store": options.get("store", True),
        "temperature": request.get("temperature", 1.0),
        "text": {"format": options.get("text_format") or {"type": "text"}},
        "tool_choice": options.get("tool_choice", "auto"),
        "tools": options.get("tools") or [],
        "top_p": request.get("top_p", 1.0),
        "truncation": "disabled",
        "user": options.get("user"),
        # OpenAI's answer names the tier that served it once the request named one.
        **({"service_tier": served} if served is not None else {}),
    }


class ResponseFold:
    """Feed it a job's chunks in order; it returns each chunk's events and keeps the snapshot."""

    def __init__(self, job: Any) -> None:
        self.head = head(job)
        self.hex = uuid.UUID(str(job.pk)).hex
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.open_tool: int | None = None  # the tool-call index of the open function_call item
        # The open message's text, joined only when a snapshot or its .done events need it:
        # adding each delta to one string copied the whole text per chunk (quadratic).
        self.text_parts: list[str] = []
        self.started = False
        self.status = QUEUED if self.head["background"] else IN_PROGRESS
        self.usage: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.ended = False

    # ---- the snapshot ---------------------------------------------------------------------

    def snapshot(self, status: str | None = None) -> dict[str, Any]:
        """The response object as the chunks so far make it (status: the job's, when it is
        live and known better than the log says)."""
        status = status or self.status
        self._join_text()
        incomplete = {"reason": "max_output_tokens"} if status == INCOMPLETE else None
        return {
            **self.head,
            "status": status,
            "error": self.error,
            "incomplete_details": incomplete,
            "output": [_copy(item) for item in self.output],
            "usage": usage(self.usage) if self.ended else None,
        }

    # ---- events ---------------------------------------------------------------------------

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def prologue(self) -> list[dict[str, Any]]:
        """The events before the first chunk."""
        out = [self._event("response.created", response=self.snapshot())]
        if self.head["background"]:
            out.append(self._event("response.queued", response=self.snapshot()))
        return out

    def feed(self, chunk: ChunkDict) -> list[dict[str, Any]]:
        if self.ended or chunk.get("choice", 0) != 0:
            return []
        out: list[dict[str, Any]] = []
        if not self.started and chunk["type"] != USAGE:
            self.started = True
            self.status = IN_PROGRESS
            out.append(self._event("response.in_progress", response=self.snapshot()))
        kind, data = chunk["type"], chunk["data"]
        if kind == CONTENT and data.get("content"):
            out += self._text(data["content"])
        elif kind == TOOL:
            out += self._tool(data)
        elif kind == USAGE:
            self.usage = data
        elif kind == FINISH:
            reason = data.get("finish_reason")
            out += self._close(INCOMPLETE if reason == CUT_SHORT else COMPLETED)
            out += self._end(status_of("succeeded", reason))
        elif kind == ERROR:
            code = data.get("code") or "engine_error"
            cancelled = code == "cancelled"
            if not cancelled:
                self.error = {"code": code, "message": data.get("message") or "The generation failed."}
            out += self._end(CANCELLED if cancelled else FAILED)
        return out

    def _index(self) -> int:
        return len(self.output) - 1

    def _current(self, kind: str) -> dict[str, Any] | None:
        if self.output and self.output[-1]["status"] == IN_PROGRESS and self.output[-1]["type"] == kind:
            return self.output[-1]
        return None

    def _text(self, text: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        item = self._current(MESSAGE)
        if item is None:
            out += self._close(COMPLETED)
            item = {
                "id": f"msg_{self.hex}_{len(self.output)}",
                "type": MESSAGE,
                "role": "assistant",
                "status": IN_PROGRESS,
                "content": [],
            }
            self.output.append(item)
            out.append(
                self._event("response.output_item.added", output_index=self._index(), item=_copy(item))
            )
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            item["content"].append(part)
            self.text_parts = []
            out.append(
                self._event(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=self._index(),
                    content_index=0,
                    part=dict(part),
                )
            )
        self.text_parts.append(text)
        out.append(
            self._event(
                "response.output_text.delta",
                item_id=item["id"],
                output_index=self._index(),
                content_index=0,
                delta=text,
                logprobs=[],
            )
        )
        return out

    def _tool(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        item = self._current(FUNCTION_CALL)
        if item is None or self.open_tool != data["index"]:
            out += self._close(COMPLETED)
            self.open_tool = data["index"]
            item = {
                "id": f"fc_{self.hex}_{len(self.output)}",
                "type": FUNCTION_CALL,
                "status": IN_PROGRESS,
                "call_id": data.get("id") or f"call_{self.hex}_{len(self.output)}",
                "name": data.get("name") or "",
                "arguments": "",
            }
            self.output.append(item)
            out.append(
                self._event("response.output_item.added", output_index=self._index(), item=_copy(item))
            )
        elif data.get("name") and not item["name"]:
            item["name"] = data["name"]
        arguments = data.get("arguments") or ""
        if arguments:
            item["arguments"] += arguments
            out.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=self._index(),
                    delta=arguments,
                )
            )
        return out

    def _close(self, status: str) -> list[dict[str, Any]]:
        """The .done events of the open item, if any, which ends with `status`."""
        if not self.output or self.output[-1]["status"] != IN_PROGRESS:
            return []
        self._join_text()
        item, index = self.output[-1], self._index()
        item["status"] = status
        out: list[dict[str, Any]] = []
        if item["type"] == MESSAGE:
            part = item["content"][0]
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            out.append(self._event("response.output_text.done", **where, text=part["text"], logprobs=[]))
            out.append(self._event("response.content_part.done", **where, part=dict(part)))
        else:
            self.open_tool = None
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    name=item["name"],
                    arguments=item["arguments"],
                )
            )
        out.append(self._event("response.output_item.done", output_index=index, item=_copy(item)))
        return out

    def _join_text(self) -> None:
        item = self._current(MESSAGE)
        if item is not None:
            item["content"][0]["text"] = "".join(self.text_parts)

    def _end(self, status: str) -> list[dict[str, Any]]:
        self._join_text()
        for item in self.output:
            if item["status"] == IN_PROGRESS:
                item["status"] = INCOMPLETE  # a failed or cancelled response's unfinished item
        self.status, self.ended = status, True
        return [self._event(TERMINAL_EVENT[status], response=self.snapshot())]


def _copy(item: dict[str, Any]) -> dict[str, Any]:
    copied = dict(item)
    if "content" in copied:
        copied["content"] = [dict(part) for part in copied["content"]]
    return copied


def fold(job: Any, chunks: list[ChunkDict]) -> tuple[ResponseFold, list[dict[str, Any]]]:
    """Every event of a log (prologue included), and the fold that made them."""
    state = ResponseFold(job)
    events = state.prologue()
    for chunk in chunks:
        events += state.feed(chunk)
    return state, events


def response_object(job: Any, chunks: list[ChunkDict]) -> dict[str, Any]:
    """The response object of a job as far as `chunks` (its log so far) go; while the log has
    not ended, with the job's own status (queued or in progress)."""
    state, _ = fold(job, chunks)
    return state.snapshot() if state.ended else state.snapshot(status_of(job.status, job.finish_reason))
