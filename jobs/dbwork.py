"""A web request's Postgres work, holding a pooled connection only while that work runs.

Under ASGI each request's ORM calls run on a thread of the request's own (asgiref's
ThreadSensitiveContext), and Django gives that thread's connection back to the pool only when
the request ends. Between the work and the end lie turns of a busy event loop and more thread
hops: measured with 500 clients arriving at once on one web process of a loaded 2-core machine,
a connection was held 0.47 s at the median and up to 3.2 s for about 5 ms of SQL, and the 32
connections of the pool were then busy past its 10 s timeout (503 "overloaded"). Run through
`db_work`, the connection goes back to the pool on the same thread, as soon as the work returns.

Such work needs no particular thread, so in a request Spool's handler serves it runs on threads
kept for it between requests rather than on the request's own: asgiref starts that thread on a
request's first sync call and joins it when the request ends, both on the event loop (a job
create's one hop cost ~0.4 ms of the loop's time in `Thread.start` on a loaded 2-core machine,
docs/PERFORMANCE.md "Issue 29 (4)"), and a request that ran no other sync code then closes its
response without a hop (jobs/compat/asgi_handler.py).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import SyncToAsync, sync_to_async
from django.conf import settings
from django.db import connection, connections
from django.db.backends.signals import connection_created

from jobs.compat.asgiref_threads import ran_sync_code

P = ParamSpec("P")
R = TypeVar("R")

# Per web request (the ASGI handler sets it): the threads of the request's sync calls that may
# hold a database connection. One set for the request, seen by its threads too (each sync call
# runs in a copy of the request's context, which holds the same set). By thread: db_work's
# thread giving its connection back says nothing of the request's own thread.
_holding: ContextVar[set[int] | None] = ContextVar("spool_request_holds_connection", default=None)

# The threads db_work runs on in a request: as many as the connection pool has connections, so
# as much database work runs at once as before, when each request had a thread of its own.
_threads = ThreadPoolExecutor(max_workers=settings.SPOOL.database.pool_size, thread_name_prefix="spool-db")


def track_connections() -> None:
    """From now on in this context (a request), note whether its threads hold a connection."""
    _holding.set(set())


def _connected(**_: Any) -> None:
    cell = _holding.get()
    if cell is not None:
        cell.add(threading.get_ident())


# Sent by Django each time a connection is taken (from the pool, with one configured).
connection_created.connect(_connected, dispatch_uid="spool-dbwork")


def may_hold_connection() -> bool:
    """Whether this request's sync thread may still hold a database connection: it took one and
    did not give it back through db_work or release_db (an async ORM call leaves it checked out),
    or nobody tracked (track_connections) to know."""
    cell = _holding.get()
    return cell is None or bool(cell)


def _give_back() -> None:
    # Inside a transaction (a test's, or a caller's atomic block) the connection stays.
    if not connection.in_atomic_block:
        connection.close()  # with a pool configured, close() returns it to the pool
        cell = _holding.get()
        if cell is not None:
            cell.discard(threading.get_ident())


def db_work(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """fn in a thread, giving the connection back when it returns: on a kept thread in a request
    Spool's handler serves, else (a test's client, a command) sync_to_async's usual thread, which
    is the caller's under async_to_sync, where a test's transaction is."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        finally:
            _give_back()

    on_kept_thread = SyncToAsync(run, thread_sensitive=False, executor=_threads)
    on_request_thread = sync_to_async(run)

    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        if _holding.get() is None:
            return await on_request_thread(*args, **kwargs)
        return await on_kept_thread(*args, **kwargs)

    return call


def thread_holds_connection() -> bool:
    """Whether this thread (in this context) has a database connection open. The web's loop
    thread never should (the ORM refuses to connect on it); a test's main thread may, after
    Playwright's loop ran ORM calls there with the async check lifted."""
    return any(conn.connection is not None for conn in connections.all(initialized_only=True))


async def release_db() -> None:
    """Give back the connection the request's async ORM calls left checked out, before a wait."""
    # A read of a live job touches Redis only: then there is nothing to give back, and the hop
    # to a thread (which starts one, ~180 µs of CPU: bench/hops.py) is skipped.
    if ran_sync_code():
        await sync_to_async(_give_back)()
