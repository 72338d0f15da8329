"""Runs the Celery worker with the steps of each job on a limited engine timed, for
`bench.scheduler --trace`: where a slot's time goes between one job's end and the next job's
start. Else untouched.

The product records no time for these steps, so this wraps them (each looked up through its
module when called, so a wrapper on the module's attribute is what runs) and appends
"event job_id epoch_seconds [via]" lines to the file named by SPOOL_BENCH_SCHED_TRACE:

    task       the Celery task began (jobs.tasks.job_run)
    claimed    statements.claim returned
    taken      admission.take returned
    gen_start  Generation.run began (the upstream call)   gen_end: it returned
    finished   runner._finish returned (the result committed, the log closed)
    rel_start  admission.release began                       rel_end: it returned
    publish    queueing.send_job of a job admitted by a release in this process (via: the released job)

The hot path only stores a tuple; a thread writes the file every half second."""

from __future__ import annotations

import functools
import inspect
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

_records: list[tuple[str, str, float, str]] = []
_releasing = threading.local()


def _note(event: str, job_id: str, via: str = "") -> None:
    _records.append((event, job_id, time.time(), via))


def _timed(module: Any, name: str, job_of: Callable[..., str], before: str = "", after: str = "") -> None:
    original = getattr(module, name)
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def awaited(*args: Any, **kwargs: Any) -> Any:
            job_id = job_of(*args, **kwargs)
            if before:
                _note(before, job_id)
            try:
                return await original(*args, **kwargs)
            finally:
                if after:
                    _note(after, job_id)

        setattr(module, name, awaited)
        return

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        job_id = job_of(*args, **kwargs)
        if before:
            _note(before, job_id)
        try:
            return original(*args, **kwargs)
        finally:
            if after:
                _note(after, job_id)

    setattr(module, name, wrapper)


def _install() -> None:
    import django

    django.setup()  # Celery's Django fix-up sets it up again at the worker's start: a no-op then

    from jobs import queueing, tasks
    from jobs.scheduling import admission
    from jobs.worker import runner, statements
    from jobs.worker.generation import Generation

    _timed(tasks, "job_run", lambda **kw: str(kw["job_id"]), before="task")
    _timed(statements, "claim", lambda job_id, now: str(job_id), after="claimed")
    _timed(admission, "take", lambda engine, job_id: str(job_id), after="taken")
    _timed(runner, "_finish", lambda job, generation: str(job.pk), after="finished")

    release = admission.release

    def timed_release(engine: Any, job_id: str, tokens_used: int | None) -> None:
        _note("rel_start", job_id)
        _releasing.job = job_id
        try:
            release(engine, job_id, tokens_used)
        finally:
            _releasing.job = ""
            _note("rel_end", job_id)

    admission.release = timed_release
    send_job = queueing.send_job

    def timed_send(job_id: str) -> None:
        via = getattr(_releasing, "job", "")
        if via:
            _note("publish", job_id, via)
        send_job(job_id)

    queueing.send_job = timed_send
    if os.environ.get("SPOOL_BENCH_RELEASE_AT_UPSTREAM_END") == "1":
        _release_at_upstream_end(runner, admission)
    run = Generation.run

    async def timed_run(self: Generation, engine: Any, max_seconds: float) -> None:
        _note("gen_start", self.job_id)
        try:
            await run(self, engine, max_seconds)
        finally:
            _note("gen_end", self.job_id)

    Generation.run = timed_run  # type: ignore[method-assign]


def _release_at_upstream_end(runner: Any, admission: Any) -> None:
    """What if a job gave its slot back once its upstream call ended, before its result is
    committed and its log closed (`bench.scheduler --what-if release-early`): the slot's
    handoff without those steps. The runner's own release after them then finds nothing to
    release and only admits."""
    from jobs.scheduling.estimate import used_tokens

    run = runner._run

    async def run_then_release(job: Any, generation: Any, engine: Any) -> None:
        await run(job, generation, engine)
        if job.engine.is_limited:
            admission.release(job.engine, str(job.pk), used_tokens(generation.usage))

    runner._run = run_then_release


def _writer(path: str) -> None:
    with open(path, "a", buffering=1 << 16) as out:
        while True:
            time.sleep(0.5)
            # list.append is atomic and only adds at the end, so no lock is needed here.
            taken = _records[:]
            del _records[: len(taken)]
            out.writelines(f"{e} {j} {t:.6f} {v}\n" for e, j, t, v in taken)
            out.flush()


def main() -> None:
    _install()
    threading.Thread(target=_writer, args=(os.environ["SPOOL_BENCH_SCHED_TRACE"],), daemon=True).start()
    from celery.__main__ import main as celery_main

    sys.argv = ["celery", *sys.argv[1:]]
    celery_main()


if __name__ == "__main__":
    main()
