"""Renders jobs, chunks, errors and SSE frames in the native /v1/jobs shapes."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from engine.types import ERROR, ChunkDict
from jobs.faces.native.queue import QueueView
from jobs.jobview import JobView
from jobs.models import Job

# SSE event names. A chunk is `chunk`, except the error chunk that ends a failed job, which is
# `error`; both carry `id: <seq>`. After the last chunk come `result` (the final job) and `done`.
EVENT_CHUNK = "chunk"
EVENT_ERROR = "error"
EVENT_RESULT = "result"
EVENT_DONE = "done"


# Line breaks to Python's str.splitlines() that JSON leaves raw; escaped in SSE data so a client
# that splits lines that way still sees one data line per frame.
_SPLITLINES_ONLY = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def error(message: str, *, type: str = "invalid_request_error", param: str | None = None,
          code: str | None = None) -> dict[str, Any]:  # fmt: skip
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def chunk(seq: int, raw: ChunkDict) -> dict[str, Any]:
    """A canonical chunk as served: seq, type, data, then choice and logprobs when set. Nested
    keys are sorted because Postgres (jsonb) reorders them: a chunk then reads byte for byte the
    same from the live log and from the archive."""
    out = {"seq": seq, "type": raw["type"], "data": _sorted(raw["data"])}
    out.update((key, _sorted(value)) for key, value in raw.items() if key not in out)
    return out


def job(job: JobView, queue: QueueView | None = None) -> dict[str, Any]:
    """The job; `queue` (queue_of) while it waits in its engine's queue."""
    finished = job.is_finished
    failed = job.status in (Job.Status.FAILED, Job.Status.CANCELLED)
    view = {
        "id": str(job.pk),
        "object": "job",
        "status": job.status,
        "engine": {"id": str(job.engine_id), "name": job.engine.name},
        "created_at": _time(job.created_at),
        "started_at": _time(job.started_at),
        "first_chunk_at": _time(job.first_chunk_at),
        "finished_at": _time(job.finished_at),
        "finish_reason": job.finish_reason or None,
        "usage": job.usage,
        "error": {"code": job.finish_reason or "error", "message": job.error} if failed else None,
        "result": job.result if finished else None,
        "store": bool(job.options.get("store")),
        "metadata": job.options.get("metadata") or {},
        # The class it runs at (None for a job made before priorities).
        "priority": job.options.get("priority"),
    }
    if queue is not None:
        view["queue"] = queue
    if "batch" in job.options:
        view["batch"] = job.options["batch"]
    return view


def sse(event: str, data: Any, *, seq: int | None = None) -> str:
    """One SSE frame. Data is one line of compact JSON, so no frame needs several data lines."""
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {event}\ndata: {_json(data).translate(_SPLITLINES_ONLY)}\n\n"


def sse_chunk(seq: int, raw: ChunkDict) -> str:
    return sse(EVENT_ERROR if raw["type"] == ERROR else EVENT_CHUNK, chunk(seq, raw), seq=seq)
