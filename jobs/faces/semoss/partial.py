"""The older /engine/partial text poll: new text since the last poll, and all text so far."""

from __future__ import annotations

from engine.types import ChunkDict
from jobs import chunklog, wakeup
from jobs.faces.semoss import render
from jobs.jobview import JobView

READER = "semoss-partial"


async def partial_text(job: JobView, *, wait: float) -> tuple[str, str, str]:
    """(new, total, status). Long-polls until there is new text or the job has ended."""
    job_id = str(job.pk)
    if job.is_finished and job.result is not None:
        choices = job.result.get("choices") or [{"content": ""}]
        total = choices[0]["content"]
        return await chunklog.claim_text_up_to(job_id, READER, total), total, render.status(job)

    async def fetch() -> tuple[str, str, ChunkDict | None]:
        return await chunklog.claim_text(job_id, READER)

    def ready(got: tuple[str, str, ChunkDict | None]) -> bool:
        new, _, last = got
        return bool(new) or (last is not None and chunklog.is_terminal(last))

    new, total, last = await wakeup.wait_for(job_id, fetch, ready, wait)
    if last is not None and chunklog.is_terminal(last):
        return new, total, render.terminal_status(last)
    return new, total, render.status(job, produced=bool(total) or last is not None)
