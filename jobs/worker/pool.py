"""The worker's Celery pool: a job's task runs on the worker's event loop, every other task
(webhook deliveries, batch steps, admissions) on a thread as Celery's threads pool runs it.

A job's message goes from the consumer straight to the loop: Celery's own trace of the task
(its signals, its span, the acknowledgement of acks_late after the task returns) runs there in a
greenback portal, and the task's body awaits the job in place (jobs.worker.runtime.wait). So the
job costs no thread, and no hand-off between a thread and the loop at its start or its end.

The concurrency still bounds the jobs: with acks_late and a prefetch of one per slot, the broker
hands the worker no more unacknowledged messages than that. A warm shutdown waits for the jobs
on the loop as for the threads."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

import greenback
from celery.concurrency import thread
from celery.concurrency.base import apply_target
from celery.concurrency.thread import ApplyResult  # type: ignore[attr-defined]  # not in celery-types

from jobs.queueing import RUN_JOB
from jobs.worker import runtime


class TaskPool(thread.TaskPool):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_loop: set[concurrent.futures.Future[Any]] = set()
        self._lock = threading.Lock()

    def on_start(self) -> None:
        # The jobs' sync work (jobs.worker.runner._in_thread: a limited engine's admission, an
        # end that keeps a stored response) runs on the loop's default executor: as many
        # threads as jobs, as the threads pool had, made only when needed. asyncio's default
        # (cores + 4) would queue that work, and a Postgres outage's retries would hold it all.
        executor = concurrent.futures.ThreadPoolExecutor(self.limit, thread_name_prefix="spool-job-sync")
        runtime.loop().set_default_executor(executor)
        super().on_start()

    def on_apply(
        self,
        target: Any,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        callback: Any = None,
        accept_callback: Any = None,
        **options: Any,
    ) -> Any:
        # The message's task name is the trace's first argument (celery.worker.request).
        if not args or args[0] != RUN_JOB:
            return super().on_apply(target, args, kwargs, callback, accept_callback, **options)
        traced = greenback.with_portal_run_sync(apply_target, target, args, kwargs, callback, accept_callback)
        future = asyncio.run_coroutine_threadsafe(traced, runtime.loop())
        with self._lock:
            self._on_loop.add(future)
        future.add_done_callback(self._done)
        return ApplyResult(future)

    def _done(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._on_loop.discard(future)

    def on_stop(self) -> None:
        with self._lock:
            running = list(self._on_loop)
        concurrent.futures.wait(running)
        super().on_stop()
