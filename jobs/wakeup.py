"""Waiting for a job's next chunk without a thread or a Redis connection per waiting client.

Each event loop (web process) holds one pub/sub connection. A waiter subscribes to its job's
wake channel, and only once Redis has confirmed the subscription does it read the log: a chunk
appended after that read publishes a wake-up the waiter is sure to see, so none is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import redis
from asgiref.sync import SyncToAsync, sync_to_async
from django.db import connection

from jobs import metrics
from jobs.chunklog import wake_channel
from jobs.redis_clients import async_redis

T = TypeVar("T")
log = logging.getLogger(__name__)

# How long a waiter trusts a subscription request to be confirmed before reading anyway.
SUBSCRIBE_CONFIRM_SECONDS = 2.0


class WakeHub:
    def __init__(self) -> None:
        self._pubsub = async_redis().pubsub()
        self._events: dict[str, set[asyncio.Event]] = {}
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._connecting = asyncio.Lock()

    async def _connect(self) -> None:
        """The pub/sub connection, made once. redis-py's PubSub.connect() takes a connection from
        the pool whenever it has none yet, so a burst of first subscribes would each take one
        (and leak all but the last), draining the bounded pool: every other Redis call of the
        process then waits for the pool's timeout (seconds per poll, measured with 100 waiters)."""
        if self._pubsub.connection is None:
            async with self._connecting:
                if self._pubsub.connection is None:
                    await self._pubsub.connect()

    @contextlib.asynccontextmanager
    async def watch(self, channel: str) -> AsyncIterator[asyncio.Event]:
        event = asyncio.Event()
        waiters = self._events.setdefault(channel, set())
        waiters.add(event)
        try:
            confirmed = self._confirmed.get(channel)
            if confirmed is None:
                confirmed = self._confirmed[channel] = asyncio.get_running_loop().create_future()
                await self._connect()
                await self._pubsub.subscribe(channel)
                self._ensure_listener()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(confirmed), SUBSCRIBE_CONFIRM_SECONDS)
            yield event
        finally:
            waiters.discard(event)
            if not waiters and self._events.get(channel) is waiters:
                del self._events[channel]
                self._confirmed.pop(channel, None)
                with contextlib.suppress(Exception):
                    await self._pubsub.unsubscribe(channel)

    def _ensure_listener(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        try:
            await self._dispatch()
        except redis.RedisError as exc:
            # Redis went away. Waiters fall back on their timeouts; the next watch() restarts
            # this listener, and redis-py re-subscribes its channels when it reconnects.
            log.warning("wake-up listener lost Redis: %s", exc)
            for confirmed in self._confirmed.values():
                if not confirmed.done():
                    confirmed.set_result(None)

    async def _dispatch(self) -> None:
        while self._events:
            message = await self._pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            channel = message["channel"].decode()
            if message["type"] == "subscribe":
                confirmed = self._confirmed.get(channel)
                if confirmed is not None and not confirmed.done():
                    confirmed.set_result(None)
            elif message["type"] == "message":
                for event in self._events.get(channel, ()):
                    event.set()


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, WakeHub] = weakref.WeakKeyDictionary()


@sync_to_async
def _close_db() -> None:
    # Runs on the request's thread-sensitive thread, the one whose connection the ORM used.
    if not connection.in_atomic_block:
        connection.close()


def _ran_sync_code() -> bool:
    """Whether this request has run sync code (the ORM) in a thread of its own. asgiref gives
    each request's ThreadSensitiveContext its executor on the first sync_to_async call, so no
    executor means no thread, hence no database connection to give back."""
    context = SyncToAsync.thread_sensitive_context.get(None)
    return context is None or context in SyncToAsync.context_to_thread_executor


async def _release_db() -> None:
    # A read of a live job touches Redis only: then there is nothing to give back, and the hop
    # to a thread (which starts one, ~180 µs of CPU: bench/hops.py) is skipped.
    if _ran_sync_code():
        await _close_db()


def hub() -> WakeHub:
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = WakeHub()
    return found


async def wait_for(
    job_id: str, fetch: Callable[[], Awaitable[T]], ready: Callable[[T], bool], timeout: float
) -> T:
    """Call fetch() until ready(result) or timeout, sleeping on the job's wake channel between
    tries. Returns the last result either way."""
    result = await fetch()
    if ready(result) or timeout <= 0:
        return result
    # Give this request's database connection back to the pool before waiting: a thousand idle
    # long-polls must not hold a thousand Postgres connections.
    await _release_db()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with hub().watch(wake_channel(job_id)) as event, metrics.reader_waiting():
        while True:
            # Clear before fetching: a wake-up that lands during the fetch then ends the wait
            # below at once instead of being lost.
            event.clear()
            result = await fetch()
            remaining = deadline - loop.time()
            if ready(result) or remaining <= 0:
                return result
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)
