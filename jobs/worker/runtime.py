"""The worker process's one event loop, on a thread of its own, and the way into it from the
Celery task threads: run(coroutine) blocks the calling thread (costing no CPU) until it is done."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

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
            log.info("worker event loop started (%s)", type(started).__module__)
        return _loop


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run coroutine on the process's loop and wait for its result on this thread."""
    return asyncio.run_coroutine_threadsafe(coroutine, loop()).result()
