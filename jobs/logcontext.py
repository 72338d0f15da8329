"""The id of the job a request or a generation is working on, carried onto every log line."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

# A context variable, not a thread-local: each asyncio task (a request, a generation on the
# worker's loop) gets its own copy, and asyncio.to_thread / sync_to_async carry it along.
_job_id: ContextVar[str | None] = ContextVar("spool_job_id", default=None)


@contextmanager
def job_log_context(job_id: Any) -> Iterator[None]:
    """Every line logged inside carries `job_id`; the previous one is back afterwards."""
    token = _job_id.set(str(job_id))
    try:
        yield
    finally:
        _job_id.reset(token)


def bind_job_id(job_id: Any) -> None:
    """From here to the end of the current task (a web request's), lines carry `job_id`. For
    code that learns the job midway and has no block to wrap, as a view does."""
    _job_id.set(str(job_id))


def unbind_job_id() -> None:
    _job_id.set(None)


def current_job_id() -> str | None:
    return _job_id.get()


class JobIdFilter(logging.Filter):
    """Puts `job_id` on the record when a job is in context (python-json-logger writes it as a
    field; the text format shows `-` without one). A caller's own extra={"job_id": ...} wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "job_id"):
            job_id = _job_id.get()
            if job_id is not None:
                record.job_id = job_id
        return True
