"""The id of the job a request or a generation is working on, carried onto every log line."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase
from django.utils.decorators import sync_and_async_middleware

# Context variables, not thread-locals: each asyncio task (a request, a generation on the
# worker's loop) gets its own copy, and asyncio.to_thread / sync_to_async carry it along.
_job_id: ContextVar[str | None] = ContextVar("spool_job_id", default=None)
# Whether a request or a task is open to bind a job to (below): outside one, in a management
# command or a test calling services directly, a bind would label every later line of the thread.
_scope: ContextVar[bool] = ContextVar("spool_log_scope", default=False)


@contextmanager
def job_log_context(job_id: Any) -> Iterator[None]:
    """Every line logged inside carries `job_id`; the previous one is back afterwards."""
    token = _job_id.set(str(job_id))
    try:
        yield
    finally:
        _job_id.reset(token)


def bind_job_id(job_id: Any) -> None:
    """From here to the end of the current request or task, lines carry `job_id`: for code that
    learns the job midway and has no block to wrap, as a view does. Outside one, nothing."""
    if _scope.get():
        _job_id.set(str(job_id))


def open_scope() -> None:
    """A task begins (the worker's hook): no job yet, binding allowed."""
    _scope.set(True)
    _job_id.set(None)


def close_scope() -> None:
    _scope.set(False)
    _job_id.set(None)


class JobIdFilter(logging.Filter):
    """Puts `job_id` on the record when a job is in context (python-json-logger writes it as a
    field; the text format shows `-` without one). A caller's own extra={"job_id": ...} wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "job_id"):
            job_id = _job_id.get()
            if job_id is not None:
                record.job_id = job_id
        return True


@sync_and_async_middleware
def job_log_middleware(get_response: Callable) -> Callable:
    """Opens a scope per request, so the views' bind_job_id labels that request's lines only,
    and closes it when the view returns. A streamed body (SSE) is sent after that, so what is
    logged while it streams goes unlabelled: the alternative, a scope left open, would label a
    sync server thread's next requests."""

    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponseBase:
            scope, job_id = _scope.set(True), _job_id.set(None)
            try:
                return await get_response(request)
            finally:
                _job_id.reset(job_id)
                _scope.reset(scope)

        markcoroutinefunction(middleware)
        return middleware

    def sync_middleware(request: HttpRequest) -> HttpResponseBase:
        scope, job_id = _scope.set(True), _job_id.set(None)
        try:
            return get_response(request)
        finally:
            _job_id.reset(job_id)
            _scope.reset(scope)

    return sync_middleware
