"""A response's event stream: the job's chunk log folded into Responses events
(jobs.responses.events), written as `event:` and `data:` lines, from any sequence number on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from jobs.faces.common import sse
from jobs.jobview import JobView
from jobs.responses.events import ResponseFold
from jobs.selectors import job_chunks_since, job_following, job_refreshed

READER = "responses"


def event(obj: dict[str, Any]) -> bytes:
    # orjson: compact UTF-8, several times faster than the json module; a resume encodes every
    # event after its starting point.
    return b"event: " + obj["type"].encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


async def events(job: JobView, starting_after: int = -1) -> AsyncIterator[bytes]:
    """Every event after `starting_after` until the response ends. The log is folded from its
    first chunk whatever the start, so the numbering never depends on where a reader joined."""
    fold = ResponseFold(job)
    pending = fold.prologue()
    cursor = 0
    async with job_following(job) as following:
        while True:
            # One write per page of chunks: each yield is an ASGI message and a socket send.
            out = b"".join(event(e) for e in pending if e["sequence_number"] > starting_after)
            if fold.ended:
                yield out
                return
            if out:
                yield out
            page = await job_chunks_since(
                job, cursor=cursor, reader=READER, wait=sse.KEEPALIVE_SECONDS, following=following
            )
            cursor = page.next_cursor
            pending = [e for chunk in page.chunks for e in fold.feed(chunk)]
            if not page.chunks:
                yield sse.KEEPALIVE
                # A fresh status lets the selector notice a dead worker, or serve a finished job
                # from Postgres once its Redis log is gone.
                job = await job_refreshed(job)
