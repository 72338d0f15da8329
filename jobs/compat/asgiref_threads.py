"""Reads asgiref's private map of the threads it gave each request (guarded by tests/test_compat.py)."""

from __future__ import annotations

from asgiref.sync import SyncToAsync


def ran_sync_code() -> bool:
    """Whether this request has run sync code (the ORM) in a thread of its own. asgiref gives
    each request's ThreadSensitiveContext its executor on the first sync_to_async call, so no
    executor means no thread, hence no database connection to give back."""
    context = SyncToAsync.thread_sensitive_context.get(None)
    return context is None or context in SyncToAsync.context_to_thread_executor
