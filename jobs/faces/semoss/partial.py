"""The older /engine/partial text poll: new text since the last poll, and all text so far."""

from __future__ import annotations

import functools
from typing import Any

from jobs import chunklog, wakeup
from jobs.faces.semoss import render
from jobs.selectors import job_text_for_owner

READER = "semoss-partial"


async def partial_text(job_id: Any, owner_id: int, *, wait: float) -> tuple[str, str, str] | None:
    """(new, total, status) of the caller's job, or None for a job that is not the caller's.
    Long-polls until there is new text or the job has ended."""
    found = await job_text_for_owner(job_id, owner_id, reader=READER, wait=wait)
    if found is None:
        return None
    job, text = found
    if text is None:  # not live: the job as Postgres has it
        key = str(job.pk)
        if job.is_finished and job.result is not None:
            choices = job.result.get("choices") or [{"content": ""}]
            total = choices[0]["content"]
            return await chunklog.claim_text_up_to(key, READER, total), total, render.status(job)
        claim = functools.partial(chunklog.claim_text, key, READER)
        text = await wakeup.wait_for(key, claim, chunklog.text_ready, wait)
    new, total, last = text
    if last is not None and chunklog.is_terminal(last):
        return new, total, render.terminal_status(last)
    return new, total, render.status(job, produced=bool(total) or last is not None)
