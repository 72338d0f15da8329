"""The worker process's one event loop, on a thread of its own, and the ways into it from sync
code: run(coroutine) blocks the calling thread (costing no CPU) until it is done; wait(coroutine)
awaits it in place when the sync code itself runs on the loop (a job's task, jobs.worker.pool).
The loop reports to the worker's liveness file: a loop that does not answer is a stuck worker."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import greenback

from jobs import liveness

T = TypeVar("T")
log = logging.getLogger(__name__)

# A loop that has not run a callback within this long is stuck (sync code holding it, a
# deadlock): every generation of the process is, so the worker stops reporting itself alive.
# Generations hand the loop back at every chunk; 5 s is far past any one turn of a healthy loop.
ANSWER_SECONDS = 5.0

_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def loop() -> asyncio.AbstractEventLoop:
    """The process's loop, started on first use (in a worker: by the first job)."""
    global _loop
    with _lock:
        if _loop is None:
            started = _new_loop()
            thread = threading.Thread(target=started.run_forever, name="spool-loop", daemon=True)
            thread.start()
            _loop = started
            liveness.register_probe(answers)
            log.info("worker event loop started (%s)", type(started).__module__)
        return _loop


def answers() -> bool:
    """Whether the loop runs a callback within ANSWER_SECONDS (the liveness probe)."""
    if _loop is None:
        return True  # not started: nothing is stuck
    ran = threading.Event()
    _loop.call_soon_threadsafe(ran.set)
    if ran.wait(ANSWER_SECONDS):
        return True
    log.error("the worker's event loop has not answered for %g s: reporting the worker stuck", ANSWER_SECONDS)
    return False


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run coroutine on the process's loop and wait for its result on this thread."""
    return asyncio.run_coroutine_threadsafe(coroutine, loop()).result()


def wait(coroutine: Coroutine[Any, Any, T]) -> T:
    """coroutine's result, from sync code: awaited in place by the loop's task that runs this
    code (it runs in a greenback portal: jobs.worker.pool), else as run() does."""
    if greenback.has_portal():
        return greenback.await_(coroutine)
    return run(coroutine)
