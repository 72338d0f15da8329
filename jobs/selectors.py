"""Reads: a caller's job as a JobView, and its chunks since a cursor (live from Redis, else from
Postgres)."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from engine.types import ChunkDict
from jobs import chunklog, limits, sweeper, tracing, wakeup
from jobs.dbwork import db_work
from jobs.jobview import JobView
from jobs.logcontext import bind_job_id
from jobs.models import Engine, Job
from jobs.types import LiveMeta

T = TypeVar("T")
# A poll's first read: the job's live state, and what it read for the owner of a live job.
Poll = Callable[[], Awaitable[tuple[chunklog.LiveState, T | None]]]


def parse_uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


async def job_for_owner(job_id: Any, owner_id: int, *, live: bool = True) -> JobView | None:
    """The job if it exists and belongs to owner_id; None otherwise (no hint which).

    A job still live in Redis (its meta there, its log without a terminal chunk) is read from
    Redis alone, with the status its log says: output or a worker's heartbeat => running, else
    queued. `live=False` reads Postgres (a live view has no messages, timings or result)."""
    key = parse_uuid(job_id)
    if key is None:
        return None
    if live:
        state = await chunklog.read_live(str(key), limits.take_deferred())
        meta = _live_meta(state)
        if meta is not None:
            return _live_view(key, meta, state) if meta["owner"] == owner_id else None
    return await _stored_job(key, owner_id)


def _live_meta(state: chunklog.LiveState) -> LiveMeta | None:
    """The job's meta while it is live: in Redis, with no terminal chunk in its log."""
    if state.last is not None and chunklog.is_terminal(state.last):
        return None
    return state.meta


def _live_view(key: uuid.UUID, meta: LiveMeta, state: chunklog.LiveState) -> JobView:
    bind_job_id(key)  # awaited, not copied: the calling request logs with the job's id
    tracing.link_read(str(key), meta["options"].get(tracing.TRACEPARENT))
    # Output or a heartbeat means a worker took it (one that wrote and went silent may be
    # dead: readers check); with neither it waits in a queue (the sweeper handles a worker
    # that died between its claim and its first heartbeat).
    return JobView.from_live(key, meta, started=state.alive or state.last is not None)


async def _stored_job(key: uuid.UUID, owner_id: int) -> JobView | None:
    job = await Job.objects.select_related("engine").filter(id=key, owner_id=owner_id).afirst()
    if job is None:
        return None
    bind_job_id(job.pk)  # awaited, not copied: the calling request logs with the job's id
    tracing.link_read(str(key), job.options.get(tracing.TRACEPARENT))
    return JobView.of(job)


async def job_refreshed(job: JobView) -> JobView:
    """The job as it is now: from Redis while it is live, else from Postgres. A stream's idle
    turn calls this, so a quiet live stream costs no query and no thread."""
    fresh = await job_for_owner(job.id, job.owner_id)
    if fresh is None:  # deleted meanwhile: the caller's copy is all there is
        return job
    return fresh


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


# An active engine by id or by name, as plain SQL: Django compiles a QuerySet anew on each
# call, which cost three times the query's own round trip (~0.6 ms of the web's CPU per job
# create on this 2-core machine; docs/PERFORMANCE.md, "Issue 29 (4)"). Both columns are unique.
_ENGINE_BY = {
    column: f'SELECT * FROM "{Engine._meta.db_table}" WHERE "is_active" AND "{column}" = %s'
    for column in ("id", "name")
}


def engine_lookup(ref: str) -> Engine | None:
    """An active engine by UUID or by name. A job start looks its engine up in the thread that
    creates the job, so the two cost one thread hop, not two."""
    if "\x00" in ref or not _encodable(ref):
        return None  # no name Postgres holds has a NUL or an unpaired surrogate; it would raise
    key = parse_uuid(ref)
    sql, value = (_ENGINE_BY["id"], key) if key else (_ENGINE_BY["name"], ref)
    return next(iter(Engine.objects.raw(sql, [value])), None)


# engine_lookup for async callers: one thread hop, the connection given back when it returns.
engine_find = db_work(engine_lookup)


# Longer than any Redis list can be (2**32 - 1 items).
MAX_CURSOR = 2**32


@dataclass(frozen=True, slots=True)
class ChunkPage:
    start: int  # sequence number of chunks[0]
    chunks: list[ChunkDict]
    ended: bool  # the terminal chunk is in this page or was handed out before

    @property
    def next_cursor(self) -> int:
        return self.start + len(self.chunks)


def job_following(job: JobView) -> wakeup.Following:
    """A stream's subscription to the job's wake-ups for all of its pages (`async with`; pass it
    to job_chunks_since as `following`)."""
    return wakeup.Following(str(job.id))


async def job_chunks_since(
    job: JobView, *, cursor: int | None, reader: str, wait: float, following: wakeup.Following | None = None
) -> ChunkPage:
    """Chunks after `cursor`, or, with no cursor, those not yet handed to `reader` (stateful
    polls). Waits up to `wait` seconds for the first new chunk of a running job, on the stream's
    own subscription if it holds one (`following`, from job_following)."""
    job_id = str(job.id)
    if cursor is not None:
        # Past any log's end either way; beyond 64 bits Redis would refuse the LRANGE (a 503).
        cursor = min(cursor, MAX_CURSOR)
    if job.is_finished and job.chunks is not None:
        archive = job.chunks
        if cursor is None:
            cursor = await chunklog.claim_up_to(job_id, reader, len(archive))
        start = min(max(cursor, 0), len(archive))
        return ChunkPage(start, archive[start:], True)

    fetch = _page_fetch(job_id, cursor, reader, following)
    start, chunks = await wakeup.wait_for(job_id, fetch, _has_chunks, wait, following)
    return await _live_page(job, start, chunks, wait)


async def job_page_for_owner(
    job_id: Any, owner_id: int, *, cursor: int | None, reader: str, wait: float
) -> tuple[JobView, ChunkPage] | None:
    """job_for_owner, then job_chunks_since without `following`: a poll's job and page, or None
    when the job does not exist or is not the caller's. While the job is live, its state and its
    first page come in one round trip of Redis (see _live_poll)."""
    key = parse_uuid(job_id)
    if key is None:
        return None
    if cursor is not None:
        cursor = min(cursor, MAX_CURSOR)
    job_key = str(key)
    poll: Poll[chunklog.Page] = functools.partial(
        chunklog.poll_live, job_key, owner_id, cursor, reader, limits.take_deferred()
    )
    state, page = await _live_poll(job_key, wait, poll, _page_fetch(job_key, cursor, reader), _has_chunks)
    found = await _poll_owner(key, owner_id, state, page)
    if found is None:
        return None
    if page is not None:
        return found, await _live_page(found, *page, wait)
    return found, await job_chunks_since(found, cursor=cursor, reader=reader, wait=wait)


async def job_text_for_owner(
    job_id: Any, owner_id: int, *, reader: str, wait: float
) -> tuple[JobView, chunklog.Text | None] | None:
    """A text poll's job and, while it is live, the text not yet handed to `reader` (waited for
    up to `wait`), in one round trip of Redis as job_page_for_owner's; None for a job that is not
    the caller's. With no text read (None), the job is Postgres's: the caller reads it there."""
    key = parse_uuid(job_id)
    if key is None:
        return None
    job_key = str(key)
    poll: Poll[chunklog.Text] = functools.partial(
        chunklog.poll_live_text, job_key, owner_id, reader, limits.take_deferred()
    )
    state, text = await _live_poll(
        job_key, wait, poll, functools.partial(chunklog.claim_text, job_key, reader), chunklog.text_ready
    )
    found = await _poll_owner(key, owner_id, state, text)
    return None if found is None else (found, text)


async def _live_poll(
    job_key: str,
    wait: float,
    poll: Poll[T],
    fetch: Callable[[], Awaitable[T]],
    ready: Callable[[T], bool],
) -> tuple[chunklog.LiveState, T | None]:
    """A poll's first read (`poll`: the job's live state, and what it reads for the owner of a
    live job, else None), then, while that is not `ready`, `fetch` on each wake-up until `wait`
    is up. When the job's wake channel is still subscribed (the caller's last poll just left, as
    a long-poll's does) the first read is made inside the watch, so an append just after it wakes
    the poll, and an idle long-poll costs that one round trip in all; otherwise a poll that found
    nothing subscribes, then reads again."""
    deadline = asyncio.get_running_loop().time() + wait
    if wait > 0 and wakeup.hub().subscribed(chunklog.wake_channel(job_key)):
        async with wakeup.watching(job_key) as watch:
            state, first = await poll()
            if first is None or ready(first):
                return state, first
            return state, await watch.until(fetch, ready, deadline, first)
    state, first = await poll()
    if first is None or ready(first) or wait <= 0:
        return state, first
    async with wakeup.watching(job_key) as watch:
        return state, await watch.until(fetch, ready, deadline)


async def _poll_owner(key: uuid.UUID, owner_id: int, state: chunklog.LiveState, read: Any) -> JobView | None:
    """The polled job as job_for_owner finds it: live (`read` is what the poll read for its
    owner), another caller's (None), or from Postgres when it is not live."""
    meta = _live_meta(state)
    if meta is None:
        return await _stored_job(key, owner_id)
    return _live_view(key, meta, state) if read is not None else None


def _page_fetch(
    job_id: str, cursor: int | None, reader: str, following: wakeup.Following | None = None
) -> Callable[[], Awaitable[tuple[int, list[ChunkDict]]]]:
    """A live job's chunks after `cursor` (those a stream's wake-ups carried, when they reach
    back to it), or, with no cursor, those claimed for `reader`."""

    async def fetch() -> tuple[int, list[ChunkDict]]:
        if cursor is not None:
            if following is not None and following.carried:
                heard = chunklog.carried_chunks(following.carried, cursor)
                if heard is not None:
                    return cursor, heard
            return cursor, await chunklog.read_since(job_id, cursor)
        return await chunklog.claim_chunks(job_id, reader)

    return fetch


# A poll's readiness takes None (nothing read) too: mypy solves _live_poll's T as the Optional.
# (chunklog.text_ready is the text polls'.)
def _has_chunks(got: chunklog.Page | None) -> bool:
    return got is not None and bool(got[1])


async def _live_page(job: JobView, start: int, chunks: list[ChunkDict], wait: float) -> ChunkPage:
    if not chunks and wait > 0 and job.status == Job.Status.RUNNING:
        await _reap_if_dead(str(job.id))
    return ChunkPage(start, chunks, bool(chunks) and chunklog.is_terminal(chunks[-1]))


async def _reap_if_dead(job_id: str) -> None:
    """A reader heard nothing from a running job: if its worker is gone, it is reaped now
    rather than at the sweeper's next turn. The heartbeat is asked on the loop first, so a
    quiet live job costs no thread and no Postgres."""
    if not (await chunklog.read_live(job_id)).alive:
        await db_work(sweeper.reap_if_dead)(job_id)


async def job_wait_until_finished(job: JobView, *, timeout: float) -> JobView:
    """Wait for the terminal chunk, then return the job as Postgres has it."""
    job_id = str(job.id)

    async def fetch() -> ChunkDict | None:
        return await chunklog.last_chunk(job_id)

    if not job.is_finished:
        await wakeup.wait_for(
            job_id, fetch, lambda last: last is not None and chunklog.is_terminal(last), timeout
        )
    return JobView.of(await Job.objects.select_related("engine").aget(pk=job.id))
