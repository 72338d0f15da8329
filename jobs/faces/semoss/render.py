"""Renders canonical chunks and finished jobs in the SEMOSS protocol's shapes."""

from __future__ import annotations

from typing import Any

import orjson

from engine.types import CONTENT, ERROR, FINISH, THINKING, TOOL, USAGE, ChunkDict
from jobs.jobview import JobView
from jobs.models import Job
from jobs.selectors import ChunkPage
from jobs.ttlcache import TtlCache

SUBMITTED = "Submitted"
IN_PROGRESS = "InProgress"
STREAMING = "Streaming"
COMPLETE = "ProgressComplete"
CANCELED = "Canceled"
ERROR_STATUS = "Error"
UNKNOWN = "UnknownJob"

_FINISHED_STATUS: dict[str, str] = {
    Job.Status.SUCCEEDED: COMPLETE,
    Job.Status.FAILED: ERROR_STATUS,
    Job.Status.CANCELLED: CANCELED,
}


def _message(stream_type: str, data: dict[str, Any], choice: int) -> dict[str, Any]:
    if choice:
        data = {**data, "choice": choice}
    return {"stream_type": stream_type, "data": data}


def messages(chunks: list[ChunkDict]) -> list[dict[str, Any]]:
    """One chunk can become several messages: a tool call's start is sent as SEMOSS sends it,
    id, type and name each in their own fragment."""
    out: list[dict[str, Any]] = []
    for chunk in chunks:
        kind, data, choice = chunk["type"], chunk["data"], chunk.get("choice", 0)
        if kind == CONTENT:
            out.append(_message("content", {"content": data["content"]}, choice))
        elif kind == TOOL:
            index = data["index"]
            if "id" in data:
                out.append(_message("tool", {"index": index, "id": data["id"]}, choice))
                out.append(_message("tool", {"index": index, "type": "function"}, choice))
                out.append(_message("tool", {"index": index, "function": {"name": data["name"]}}, choice))
            if data.get("arguments"):
                out.append(
                    _message("tool", {"index": index, "function": {"arguments": data["arguments"]}}, choice)
                )
        elif kind == THINKING:
            out.append(_message("thinking", {"thinking": data["thinking"]}, choice))
        elif kind == USAGE:
            usage = {"input_tokens": data["input_tokens"], "output_tokens": data["output_tokens"]}
            out.append(_message("usage", usage, 0))
        elif kind == FINISH:
            reason = data["finish_reason"]
            out.append(
                _message("tool" if reason == "tool_calls" else "content", {"finish_reason": reason}, 0)
            )
        elif kind == ERROR:
            reason = "cancelled" if data.get("code") == "cancelled" else "error"
            out.append(_message("content", {"finish_reason": reason, "error": data["message"]}, 0))
    return out


# Rendered pages, shared by every reader of a job that asks for the same chunks while they are
# the job's latest (many pollers of one job, a page per chunk batch). A log's chunk at a sequence
# number never changes (a log Redis lost is put back as it was), so (job, start, end) names one
# page for good; the time and the count only bound the memory.
PAGE_SECONDS = 2.0
_pages: TtlCache[orjson.Fragment] = TtlCache(max_entries=256)


def page_messages(job_id: str, page: ChunkPage) -> orjson.Fragment:
    """messages(page.chunks) as JSON (for orjson.dumps), rendered once per (job, start, end)."""
    if not page.chunks:
        return orjson.Fragment(b"[]")
    key = f"{job_id}:{page.start}:{page.next_cursor}"
    rendered = _pages.get(key)
    if rendered is None:
        rendered = orjson.Fragment(orjson.dumps(messages(page.chunks)))
        _pages.put(key, rendered, PAGE_SECONDS)
    return rendered


def terminal_status(chunk: ChunkDict) -> str:
    if chunk["type"] == FINISH:
        return COMPLETE
    return CANCELED if chunk["data"].get("code") == "cancelled" else ERROR_STATUS


def status(job: JobView, page: ChunkPage | None = None, *, produced: bool = False) -> str:
    """The status a poll reports: final once the job is finished or its terminal chunk is out."""
    if job.is_finished:
        return _FINISHED_STATUS[job.status]
    if page is not None and page.ended:
        return terminal_status(page.chunks[-1]) if page.chunks else COMPLETE
    if produced or (page is not None and page.next_cursor > 0):
        return STREAMING
    return SUBMITTED if job.status == Job.Status.QUEUED else IN_PROGRESS


def llm_output(job: JobView) -> dict[str, Any]:
    """The LLM reactor's output for a finished job."""
    result = job.result or {"choices": [], "usage": None}
    first = result["choices"][0] if result["choices"] else {"content": "", "tool_calls": []}
    usage = job.usage or {}
    output: dict[str, Any] = {
        "response": first["content"],
        "messageType": "CHAT",
        "messageId": str(job.pk),
        "roomId": str(job.room_id) if job.room_id else None,
        "numberOfTokensInPrompt": usage.get("input_tokens", 0),
        "numberOfTokensInResponse": usage.get("output_tokens", 0),
    }
    if first["tool_calls"]:
        output["messageType"] = "TOOL"
        output["response"] = [
            {"id": call["id"], "name": call["name"], "arguments": call["arguments"]}
            for call in first["tool_calls"]
        ]
    if job.request.get("n", 1) > 1:
        output["choices"] = [choice["content"] for choice in result["choices"]]
    return output


def pixel_return(insight_id: str, expression: str, output: Any, *, error: bool = False) -> dict:
    return {
        "insightID": insight_id,
        "pixelReturn": [
            {
                "pixelExpression": expression,
                "output": output,
                "operationType": ["ERROR"] if error else ["OPERATION"],
                "isMeta": False,
            }
        ],
    }
