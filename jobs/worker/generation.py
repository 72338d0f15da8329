"""One job's generation on the worker's event loop: the engine's chunks go to the job's log as
they come, folded into the result on the way; it ends in exactly one terminal chunk."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any, cast

from django.utils import timezone

from engine.types import (
    ERROR,
    FINISH,
    USAGE,
    Chunk,
    ChunkDict,
    Engine,
    EngineError,
    GenerationRequest,
)
from jobs import lifecycle, metrics
from jobs.logcontext import job_log_context
from jobs.results import ResultBuilder
from jobs.types import JobResult, Usage
from jobs.worker.writer import JobLog, writer

log = logging.getLogger(__name__)


CANCELLED = lifecycle.error_chunk("cancelled", "The job was cancelled.")


class Generation:
    def __init__(self, job_id: str, request: GenerationRequest, *, quiet: bool = False) -> None:
        self.job_id = job_id
        self.request = request
        self.builder = ResultBuilder(request.choice_count)
        self.finish_reasons: list[str | None] = [None] * request.choice_count
        self.usage: Usage | None = None
        self.first_chunk_at: datetime | None = None
        self.terminal: ChunkDict | None = None
        self._consume: asyncio.Task[None] | None = None
        self.log = JobLog(job_id, on_cancel=self._cancel, quiet=quiet)

    @property
    def written(self) -> list[ChunkDict]:
        return self.log.written

    def _cancel(self) -> None:
        if self._consume is not None:
            self._consume.cancel()

    def stop(self) -> None:
        """Ends the generation as cancelled, whether or not its stream has started."""
        self.log.cancelled = True
        self._cancel()

    async def run(self, engine: Engine, max_seconds: float) -> None:
        """Stream the engine into the log until it ends, fails, is cancelled or runs too long."""
        # Every line logged on the loop for this generation carries its job id.
        with job_log_context(self.job_id):
            await self._run(engine, max_seconds)
        if self.terminal is not None and self.terminal["type"] == ERROR:
            code = self.terminal["data"]["code"]
            if code.startswith("upstream"):
                metrics.upstream_error(code)

    async def _run(self, engine: Engine, max_seconds: float) -> None:
        try:
            engine.check(self.request)
        except EngineError as exc:
            self.terminal = lifecycle.error_chunk(exc.code, str(exc))
            return
        if self.log.cancelled:  # stopped before it started
            self.terminal = CANCELLED
            return
        out = writer()
        out.open(self.log)
        self._consume = asyncio.get_running_loop().create_task(self._stream(engine, out))
        try:
            done, _ = await asyncio.wait({self._consume}, timeout=max_seconds)
            if not done:
                self._consume.cancel()
                await asyncio.wait({self._consume})
                self.terminal = lifecycle.error_chunk(
                    "timeout", f"The job ran past its limit of {max_seconds:g} s."
                )
            elif self.log.cancelled:
                self.terminal = CANCELLED
            else:
                self.terminal = self._ending(self._consume.exception())
        finally:
            out.close(self.log)

    async def _stream(self, engine: Engine, out: Any) -> None:
        # aclosing: a cancelled job closes the engine's generator at once (an upstream request
        # is closed with it), not whenever it is collected.
        async with contextlib.aclosing(engine.stream(self.request)) as chunks:
            async for chunk in chunks:
                raw = self._take(chunk)
                if raw is None:
                    continue
                self.log.add(raw)
                if self.first_chunk_at is not None:
                    out.ready(self.log)
                    continue
                self.first_chunk_at = timezone.now()
                # The first chunk leaves alone, before the rest of what the upstream sent with it
                # is parsed: the writer runs in the turn this yields, and a reader's first token
                # waits for one chunk's append rather than for a whole read's (200 tokens at
                # full speed: ~2 ms; docs/PERFORMANCE.md, "Issue 29 (11)"). Later chunks batch.
                out.ready(self.log, at_once=True)
                # While its job's claim is not in, the rest waits (jobs/worker/runner.py,
                # _run_claiming): the first chunk still leaves alone once it is.
                await self.log.released.wait()
                await asyncio.sleep(0)

    def _ending(self, exc: BaseException | None) -> ChunkDict:
        if isinstance(exc, EngineError):
            return lifecycle.error_chunk(exc.code, str(exc))
        if exc is not None:  # an engine bug ends this job only
            log.error("engine failed on job %s", self.job_id, exc_info=exc)
            return lifecycle.error_chunk("engine_error", f"{type(exc).__name__}: {exc}")
        if any(reason is None for reason in self.finish_reasons):
            return lifecycle.error_chunk("engine_error", "The engine ended without a finish_reason.")
        data: dict[str, Any] = {"finish_reason": self.finish_reasons[0]}
        if self.request.choice_count > 1:
            data["choices"] = self.finish_reasons
        return {"type": FINISH, "data": data}

    def _take(self, chunk: Chunk) -> ChunkDict | None:
        """Fold one engine chunk into the result; the dict to log, or None for the per-choice
        finish and usage chunks, which the job's single ending replaces."""
        if chunk.type == FINISH:
            if chunk.choice < len(self.finish_reasons):
                self.finish_reasons[chunk.choice] = chunk.data["finish_reason"]
            return None
        if chunk.type == USAGE:
            self.usage = cast(Usage, chunk.data)  # an engine's usage chunk has this shape
            return None
        raw = chunk.to_dict()
        self.builder.add(raw)
        return raw

    def ending(self) -> tuple[ChunkDict, ChunkDict]:
        """(usage chunk, terminal chunk)."""
        if self.terminal is None:
            self.terminal = lifecycle.error_chunk("engine_error", "The job stopped without an ending.")
        if self.usage is None:
            # The engine gave none (it failed early): count what was streamed, and say so.
            self.usage = lifecycle.estimated_usage(self.written)
        return {"type": USAGE, "data": dict(self.usage)}, self.terminal

    def result(self) -> JobResult:
        return self.builder.build(self.finish_reasons, self.usage)

    async def close_log(self, ending: list[ChunkDict], patience: float) -> bool:
        """Append the ending and wait until Redis has all of the log (True), or give up after
        `patience` seconds of outage (False): readers then get the job from Postgres."""
        out = writer()
        self.log.quiet = False  # whoever waits on the job hears its end
        for chunk in ending:
            self.log.add(chunk)
        out.open(self.log)
        try:
            async with asyncio.timeout(patience):
                await self.log.drained.wait()
            return True
        except TimeoutError:
            return False
        finally:
            out.close(self.log)
