"""Batched chunk-log writes for every generation on the loop: each turn, the chunks of every job
that has some ready go to Redis in one round trip, with the heartbeats of all running jobs, and
each job's cancel flag comes back in the reply. No timer delays a chunk: a batch leaves as soon
as the loop has run everything else that was ready."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import redis

from engine.types import ChunkDict
from jobs import chunklog, metrics

log = logging.getLogger(__name__)

# After a failed write, wait this long before the next try, so an outage is not a busy loop.
RETRY_PAUSE_SECONDS = 0.5


class JobLog:
    """One job's side of the log: every chunk it produced (the archive), how many Redis has
    confirmed, and what to do when a reply says the job was cancelled."""

    def __init__(self, job_id: str, on_cancel: Callable[[], None], *, quiet: bool = False) -> None:
        self.job_id = job_id
        # Its appends wake no reader (a Batch API line: nobody streams it) until its ending.
        self.quiet = quiet
        self.written: list[ChunkDict] = []
        self.confirmed = 0  # chunks Redis has acknowledged, a prefix of written
        self.in_flight = 0  # chunks of written sent in the batch awaiting its reply
        self.lost = False  # Redis came back empty: the whole log must be written again
        self.cancelled = False
        # Clear while its job's claim is not in (jobs/worker/runner.py, _run_claiming): nothing
        # of it goes to Redis, chunks or heartbeat, until the writer's release().
        self.released = asyncio.Event()
        self.released.set()
        self.last_sent = 0.0  # monotonic time of the last write (heartbeat)
        self.on_cancel = on_cancel
        self.drained = asyncio.Event()  # set while nothing is waiting to be written
        self.drained.set()
        self.failing = False  # the last write failed: warn once per outage

    def add(self, chunk: ChunkDict) -> None:
        self.written.append(chunk)
        self.drained.clear()

    @property
    def held(self) -> bool:
        return not self.released.is_set()

    def pending(self) -> list[ChunkDict]:
        return self.written[self.confirmed :]


class LogWriter:
    """One per event loop. Generations add chunks to their JobLog and call ready(); the writer
    sends everything ready in one pipeline, one batch in flight at a time (chunks that come
    meanwhile ride in the next), and refreshes idle jobs' heartbeats once a second."""

    def __init__(self) -> None:
        self._running: dict[str, JobLog] = {}
        self._ready: dict[str, JobLog] = {}
        self._wake = asyncio.Event()
        self._waiting = True  # nothing in flight: the writer waits for a chunk to be ready
        self._at_once = False  # the next batch leaves without waiting for the loop's turn
        self._tasks = [
            asyncio.get_running_loop().create_task(self._write_forever(), name="spool-log-writer"),
            asyncio.get_running_loop().create_task(self._beat_forever(), name="spool-heartbeats"),
        ]

    def open(self, job_log: JobLog) -> None:
        """Start writing for a job: its first heartbeat goes out with the next batch."""
        self._running[job_log.job_id] = job_log
        self.ready(job_log)

    def close(self, job_log: JobLog) -> None:
        self._running.pop(job_log.job_id, None)

    def ready(self, job_log: JobLog, *, at_once: bool = False) -> None:
        """`at_once` (a job's first chunk: see Generation): if the writer is idle, its batch
        leaves as soon as it runs, with what is ready by then, rather than after one more turn
        of the loop. A writer with a batch in flight sends the next when the reply comes, and
        that one gathers as usual: skipping the gathering there made every batch ~8% smaller
        at 100 streams (docs/PERFORMANCE.md, "Issue 29 (11)")."""
        if job_log.held:
            return
        self._ready[job_log.job_id] = job_log
        if at_once and self._waiting:
            self._at_once = True
        self._wake.set()

    @property
    def idle(self) -> bool:
        """Nothing in flight and nothing ready: no generation on this loop is streaming now."""
        return self._waiting and not self._ready

    def release(self, job_log: JobLog) -> None:
        """Its job is claimed: what it holds (its first chunk) goes out now, as a first chunk
        does, if it is still being written; a closed one goes with its ending."""
        job_log.released.set()
        if job_log.job_id in self._running:
            self.ready(job_log, at_once=True)

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(chunklog.HEARTBEAT_SECONDS / 2)
            stale = time.monotonic() - chunklog.HEARTBEAT_SECONDS / 2
            for job_log in list(self._running.values()):
                if job_log.last_sent < stale:
                    self.ready(job_log)

    async def _write_forever(self) -> None:
        while True:
            self._waiting = True
            await self._wake.wait()
            self._waiting = False
            self._wake.clear()
            if self._at_once:
                self._at_once = False
            else:
                # One turn of the loop: every generation that has a chunk ready now adds it.
                await asyncio.sleep(0)
            batch = list(self._ready.values())
            self._ready.clear()
            try:
                await self._write(batch)
            except redis.RedisError as exc:
                metrics.backend_error("redis")
                for job_log in batch:
                    if not job_log.failing:
                        log.warning("job %s: cannot write to Redis (%s); keeping chunks", job_log.job_id, exc)
                        job_log.failing = True
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
                for job_log in batch:
                    self.ready(job_log)
            except Exception:  # a bug here must not stop every generation's writes
                log.exception("log writer failed; retrying")
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
                for job_log in batch:
                    self.ready(job_log)

    async def _write(self, batch: list[JobLog]) -> None:
        for job_log in [j for j in batch if j.lost]:
            await chunklog.rewrite(job_log.job_id, job_log.written)
            job_log.lost = False
            job_log.confirmed = len(job_log.written)
        sends = []
        for job_log in batch:
            pending = job_log.pending()
            job_log.in_flight = len(pending)
            sends.append((job_log.job_id, pending))
        # Appended only where the log still has what Redis confirmed: a log that lost chunks
        # comes back with another length, and is rewritten whole below.
        quiet = [j.job_id for j in batch if j.quiet]
        replies = await chunklog.append_many(sends, lengths=[j.confirmed for j in batch], quiet=quiet)
        metrics.chunks_appended(sum(len(chunks) for _, chunks in sends))
        now = time.monotonic()
        for job_log, reply in zip(batch, replies, strict=True):
            job_log.failing = False
            job_log.last_sent = now
            expected = job_log.confirmed + job_log.in_flight
            if job_log.in_flight and reply.length != expected:
                # Redis restarted empty: put the whole log back, same sequence numbers.
                job_log.lost = True
                self.ready(job_log)
            else:
                job_log.confirmed = expected
            job_log.in_flight = 0
            if len(job_log.written) > job_log.confirmed:
                self.ready(job_log)  # more came while this batch was in flight
            else:
                job_log.drained.set()
            if reply.cancelled and not job_log.cancelled:
                job_log.cancelled = True
                job_log.on_cancel()


_writers: dict[asyncio.AbstractEventLoop, LogWriter] = {}


def writer() -> LogWriter:
    """The running loop's writer."""
    loop = asyncio.get_running_loop()
    found = _writers.get(loop)
    if found is None:
        found = _writers[loop] = LogWriter()
    return found
