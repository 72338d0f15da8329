"""Django's ASGI handler without its thread hop to close a response whose thread holds no
database connection.

Django's handler ends every request with `await sync_to_async(response.close)()`, so that the
request_finished receivers (closing the database connections of the request's sync thread) run
on that thread. asgiref gives each request a thread of its own (ThreadSensitiveContext) on its
first hop, so for a request that never ran sync code (a long-poll or a live job read from
Redis, the most frequent requests) that hop starts a thread only to close nothing: 180 µs of CPU
of a ~1 ms poll (`python -m bench.hops`; docs/WEB.md). Such a request closes its response on the
loop instead: the loop's thread holds no database connection (the ORM refuses to run there;
should one be open there all the same, the hop is kept), and the other receivers (closing
caches, resetting the urlconf) are as cheap on the loop. So does a request whose sync code gave
its connection back (jobs.dbwork: db_work, release_db), such as every stream's and every
create's: its thread has nothing to close either. A request whose thread may still hold a
connection (it took one and did not give it back: a sync view, an async ORM call) keeps
Django's hop.

`handle` below is Django 5.2's with those changes (marked); tests/test_compat.py fails when
Django's own changes, so an upgrade brings the copy up to date.
"""

from __future__ import annotations

import asyncio
from typing import Any

from asgiref.sync import sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.urls import set_script_prefix

from jobs.compat.asgiref_threads import ran_sync_code
from jobs.dbwork import may_hold_connection, thread_holds_connection, track_connections


class Handler(ASGIHandler):
    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        """Handles the ASGI request. Called via the __call__ method."""
        # Receive the HTTP request body as a stream object.
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        # Request is complete and can be served.
        track_connections()  # Spool: see the close below
        set_script_prefix(get_script_prefix(scope))
        await signals.request_started.asend(sender=self.__class__, scope=scope)
        # Get the request and check for basic issues.
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            assert error_response is not None  # create_request returns one of the two
            body_file.close()
            await self.send_response(error_response, send)
            await sync_to_async(error_response.close)()
            return

        async def process_request(request: Any, send: Any) -> Any:
            response = await self.run_get_response(request)
            try:  # noqa: SIM105  (Django's code, kept line for line)
                await self.send_response(response, send)
            except asyncio.CancelledError:
                # Client disconnected during send_response (ignore exception).
                pass

            return response

        # Try to catch a disconnect while getting response.
        tasks = [
            # Check the status of these tasks and (optionally) terminate them
            # in this order. The listen_for_disconnect() task goes first
            # because it should not raise unexpected errors that would prevent
            # us from cancelling process_request().
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request(request, send)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        # Now wait on both tasks (they may have both finished by now).
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    # Ignore client disconnects.
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                # Allow views to handle cancellation.
                task.cancel()
                try:  # noqa: SIM105  (Django's code, kept line for line)
                    await task
                except asyncio.CancelledError:
                    # Task re-raised the CancelledError as expected.
                    pass

        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            await signals.request_finished.asend(sender=self.__class__)
        else:
            await close_response(response)  # Spool: see close_response

        body_file.close()


async def close_response(response: Any) -> None:
    """Close a served response (request_finished's receivers run): with no hop to a thread for a
    request that ran no sync code, or whose sync code gave its connection back (see above), as
    long as the loop's own thread holds no connection for request_finished to look at."""
    if (ran_sync_code() and may_hold_connection()) or thread_holds_connection():
        await sync_to_async(response.close)()
    else:
        response.close()
