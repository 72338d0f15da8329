"""Worker liveness for an orchestrator: a file the worker touches while it is well, and removes
when it stops; scripts/worker-alive.sh checks its age."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

# Each returns False while some part of the worker is stuck (the worker runtime registers one
# for its event loop); the file is touched only while every probe says the worker is well.
Probe = Callable[[], bool]
_probes: list[Probe] = []
_stop = threading.Event()
_lock = threading.Lock()  # so no last touch lands after stop() removed the file


def register_probe(probe: Probe) -> None:
    _probes.append(probe)


def _well() -> bool:
    for probe in list(_probes):
        try:
            if not probe():
                return False
        except Exception:
            log.exception("a liveness probe failed")
            return False
    return True


def _beat(path: Path, every: float) -> None:
    while not _stop.is_set():
        well = _well()
        with _lock:
            if well and not _stop.is_set():
                path.touch()
        _stop.wait(every)


def start(path: str, every: float) -> threading.Thread | None:
    """Touch `path` every `every` seconds from a thread of its own, so long generations and a
    busy pool do not delay it. An empty path turns liveness reporting off."""
    if not path:
        return None
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _stop.clear()
    thread = threading.Thread(target=_beat, args=(target, every), name="spool-liveness", daemon=True)
    thread.start()
    return thread


def stop(path: str) -> None:
    """A worker shutting down is not alive: remove the file at once rather than let it age."""
    _stop.set()
    if path:
        with _lock, contextlib.suppress(FileNotFoundError):
            os.unlink(path)
