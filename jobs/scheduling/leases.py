"""The slots this worker process holds on limited engines, renewed a few times per lease by one
thread: a worker that dies stops renewing, and its slots come back to their engines within
SPOOL_LEASE_SECONDS without anyone noticing it died. Renewing does not depend on a job's
output: a generation that waits a minute for its first token keeps its slot."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

from jobs.models import Engine
from jobs.periodic import start_periodic
from jobs.scheduling import admission

log = logging.getLogger(__name__)

RENEWALS_PER_LEASE = 3

_held: dict[str, tuple[Engine, set[str]]] = {}  # engine id -> (engine, job ids)
_lock = threading.Lock()
_renewer: threading.Thread | None = None


@contextmanager
def holding(engine: Engine, job_id: str) -> Iterator[None]:
    """While inside, the job's slot is renewed."""
    _ensure_renewer()
    with _lock:
        _held.setdefault(str(engine.pk), (engine, set()))[1].add(job_id)
    try:
        yield
    finally:
        with _lock:
            jobs = _held.get(str(engine.pk), (engine, set()))[1]
            jobs.discard(job_id)
            if not jobs:
                _held.pop(str(engine.pk), None)


def renew_all() -> None:
    with _lock:
        held = [(engine, sorted(jobs)) for engine, jobs in _held.values()]
    for engine, jobs in held:
        admission.renew(engine, jobs)


def _ensure_renewer() -> None:
    global _renewer
    with _lock:
        if _renewer is None:
            every = lambda: settings.SPOOL.scheduling.lease_seconds / RENEWALS_PER_LEASE  # noqa: E731
            _renewer = start_periodic("spool-lease-renewer", renew_all, every)
