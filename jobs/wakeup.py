"""Waiting for a job's next chunk without a thread or a Redis connection per waiting client.

Each event loop (web process) holds one pub/sub connection per Redis node (one on a single
Redis, one per shard on a cluster, each with its own listener task). A waiter subscribes to its
job's wake channel, and only once Redis has confirmed the subscription does it read the log: a
chunk appended after that read publishes a wake-up the waiter is sure to see, so none is missed.

The channels are sharded (SSUBSCRIBE; the append script SPUBLISHes): on a cluster a wake-up
travels only to the shard that holds the job instead of being broadcast over the cluster bus to
every node, and it works the same on one Redis 7. A wake-up carries the chunks the append
announced (chunklog.carried_chunks): a stream takes its page from them, not from the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import redis
from redis.asyncio.client import PubSub
from redis.backoff import ExponentialBackoff

from jobs import metrics
from jobs.chunklog import wake_channel
from jobs.dbwork import release_db
from jobs.redis_clients import async_redis, is_cluster, own_pubsub

T = TypeVar("T")
log = logging.getLogger(__name__)

SUBSCRIBE, UNSUBSCRIBE = "SSUBSCRIBE", "SUNSUBSCRIBE"
# How long a waiter trusts a subscription request to be confirmed before reading anyway.
SUBSCRIBE_CONFIRM_SECONDS = 2.0
# A listener that lost its Redis tries again after 50 ms, doubling up to 1 s while it is away.
RECONNECT_FIRST_SECONDS = 0.05
RECONNECT_MAX_SECONDS = 1.0
# A channel stays subscribed this long after its last waiter left: a long-polling client asks
# again within moments, and its next wait then costs no subscribe and unsubscribe round trips
# (in turn with every other waiter on the one pub/sub connection).
LINGER_SECONDS = 5.0
# A stream that falls this many wake-ups behind reads the log instead of what they carried.
CARRIED_MAX = 256


class Woken(asyncio.Event):
    """A waiter's wake-up. A stream's also keeps what each wake-up carried since the stream last
    took it (`carried`: the chunks the append announced, chunklog.carried_chunks), so that a
    page at a realistic pace, a chunk or two, is not read back from the log: that read was the
    stream's one round trip of Redis per page."""

    def __init__(self, keeps_carried: bool = False) -> None:
        super().__init__()
        self.carried: list[bytes] | None = [] if keeps_carried else None

    def heard(self, data: bytes) -> None:
        """A wake-up with what it carried (b'' when it may have come with nothing heard: read
        the log)."""
        if self.carried is not None:
            if len(self.carried) >= CARRIED_MAX:
                self.carried[:] = [b""]
            self.carried.append(data)
        self.set()


class WakeHub:
    def __init__(self) -> None:
        client = async_redis()
        self._cluster = client if is_cluster(client) else None
        # Per node ("" on a single Redis): its pub/sub connection and the task that reads it.
        # One listener per node because its reads block for up to a second, and a wake-up on
        # one shard must not wait behind a quiet other one.
        self._pubsubs: dict[str, PubSub] = {}
        # Per node: how to open a fresh pub/sub connection there (see _reconnect).
        self._opener: dict[str, Callable[[], PubSub]] = {}
        if self._cluster is None:
            pool = client.connection_pool
            self._opener[""] = lambda: own_pubsub(pool.connection_class, pool.connection_kwargs)
            self._pubsubs[""] = self._opener[""]()
        self._listeners: dict[str, asyncio.Task[None]] = {}
        # (Un)subscribes go out from one task per node, in the order they were asked for (_sent).
        # Sent by each waiter, a burst of first subscribes each took a connection (redis-py's
        # PubSub.connect awaits before it keeps one): all but the last leaked, draining the
        # bounded pool (every other Redis call then waited for the pool's timeout), and a channel
        # sent on a leaked connection was never heard again; and a subscribe could overtake the
        # unsubscribe of the waiter before it, leaving the channel unsubscribed while a reader
        # waited on it. The lock keeps a send and _reconnect's swap of the connection apart.
        self._sending: dict[str, asyncio.Lock] = {}
        # Per node: the (un)subscribes asked for and not sent yet, and the task that sends them.
        self._outbox: dict[str, list[tuple[str, str, asyncio.Future[None]]]] = {}
        self._senders: dict[str, asyncio.Task[None]] = {}
        self._node_of: dict[str, str] = {}  # channel -> the node it was subscribed on
        self._events: dict[str, set[Woken]] = {}
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        # Channels nobody waits on, still subscribed until their timer fires.
        self._lingering: dict[str, asyncio.TimerHandle] = {}
        # Moves on whenever a wake-up may have gone unheard: a pub/sub connection lost, or a
        # subscription Redis dropped (a slot moved away). A waiter that saw it stand still
        # while it waited heard every wake-up of its channel (heard_since).
        self.epoch = 0

    def subscribed(self, channel: str) -> bool:
        """Whether a wake-up on the channel is already sure to be heard."""
        confirmed = self._confirmed.get(channel)
        return confirmed is not None and confirmed.done()

    def heard_since(self, channel: str, epoch: int) -> bool:
        """Whether every wake-up on a channel subscribed at `epoch` has been heard since."""
        return self.epoch == epoch and self.subscribed(channel)

    async def _node_for(self, channel: str) -> str:
        """The node that serves the channel's slot, with a pub/sub connection of our own there.

        Not redis-py's ClusterPubSub: in redis-py 8.1 its per-node subscriptions borrow
        connections from the node's command pool, and under concurrent subscribes and
        unsubscribes a regular command was handed a connection being closed
        ("'NoneType' object has no attribute 'writelines'"). What it would add is following a
        slot to a new owner; here, after a failover or resharding, readers fall back on their
        long-poll timeouts until their channel is subscribed again (on its next first watch).
        A node restarted in place is followed: see _listen."""
        if self._cluster is None:
            return ""
        node = await self._cluster.node_of(channel)  # which discovers the cluster if nothing has yet
        if node.name not in self._pubsubs:
            self._opener[node.name] = functools.partial(self._cluster.node_pubsub, node)
            self._pubsubs[node.name] = self._opener[node.name]()
        return node.name

    @contextlib.asynccontextmanager
    async def watch(self, channel: str, keeps_carried: bool = False) -> AsyncIterator[Woken]:
        event = Woken(keeps_carried)
        waiters = self._events.setdefault(channel, set())
        waiters.add(event)
        lingering = self._lingering.pop(channel, None)
        if lingering is not None:
            lingering.cancel()
        try:
            confirmed = self._confirmed.get(channel)
            if confirmed is None:
                confirmed = self._confirmed[channel] = asyncio.get_running_loop().create_future()
                node = self._node_of[channel] = await self._node_for(channel)
                try:
                    await self._sent(node, SUBSCRIBE, channel)
                except redis.ConnectionError as exc:
                    # A dropped pub/sub connection is no outage for the reader: it reads the log
                    # and waits out its timeout unheard; the listener reconnects, and the next
                    # wait on the channel subscribes again.
                    log.warning("wake-up subscription not sent (%s); reading without it", exc)
                    self.epoch += 1
                    self._confirmed.pop(channel, None)
                    self._node_of.pop(channel, None)
                    if not confirmed.done():  # the listener, losing Redis too, may have set it
                        confirmed.set_result(None)
                self._ensure_listener(node)
            if not confirmed.done():  # a channel still subscribed (the usual long-poll) waits for nothing
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(confirmed), SUBSCRIBE_CONFIRM_SECONDS)
            yield event
        finally:
            waiters.discard(event)
            if not waiters and self._events.get(channel) is waiters:
                loop = asyncio.get_running_loop()
                self._lingering[channel] = loop.call_later(
                    LINGER_SECONDS, lambda: loop.create_task(self._unsubscribe_idle(channel, waiters))
                )

    async def _unsubscribe_idle(self, channel: str, waiters: set[Woken]) -> None:
        """Drop the subscription of a channel whose waiters all left and none came back."""
        if waiters or self._events.get(channel) is not waiters:
            return
        self._lingering.pop(channel, None)
        del self._events[channel]
        self._confirmed.pop(channel, None)
        subscribed_on = self._node_of.pop(channel, None)
        if subscribed_on is not None:
            with contextlib.suppress(Exception):
                await self._sent(subscribed_on, UNSUBSCRIBE, channel)

    async def _sent(self, node: str, command: str, channel: str) -> None:
        """(Un)subscribes the channel on the node's pub/sub connection, in the order asked; raises
        what the send raised. One task per node sends, and what was asked while it sent goes out
        together next: one command per run of the same kind, with all of its channels. Sent one
        by one, each send awaiting a few turns of a loop busy with 100 streams, a wave of first
        polls waited seconds for their turn (docs/PERFORMANCE.md, "Issue 29 (9)")."""
        done = asyncio.get_running_loop().create_future()
        self._outbox.setdefault(node, []).append((command, channel, done))
        sender = self._senders.get(node)
        if sender is None or sender.done():
            self._senders[node] = asyncio.get_running_loop().create_task(self._send_queued(node))
        await done

    async def _send_queued(self, node: str) -> None:
        # Its own task: a waiter cancelled mid-send (its client left) cannot leave others unsent.
        while queued := self._outbox.pop(node, None):
            async with self._sending.setdefault(node, asyncio.Lock()):  # not while _reconnect swaps
                pubsub = self._pubsubs[node]
                for command, run in self._runs(queued):
                    try:
                        channels = [channel for channel, _ in run]
                        if command == SUBSCRIBE:
                            await pubsub.ssubscribe(*channels)
                        else:
                            await pubsub.sunsubscribe(*channels)
                    except Exception as exc:
                        for _, done in run:
                            if not done.done():  # a cancelled waiter's is
                                done.set_exception(exc)
                    else:
                        for _, done in run:
                            if not done.done():
                                done.set_result(None)

    def _runs(
        self, queued: list[tuple[str, str, asyncio.Future[None]]]
    ) -> list[tuple[str, list[tuple[str, asyncio.Future[None]]]]]:
        """The queue as commands in order: each run of the same kind is one, except on a cluster,
        whose nodes refuse channels of two slots in one command (CROSSSLOT)."""
        runs: list[tuple[str, list[tuple[str, asyncio.Future[None]]]]] = []
        for command, channel, done in queued:
            if runs and runs[-1][0] == command and self._cluster is None:
                runs[-1][1].append((channel, done))
            else:
                runs.append((command, [(channel, done)]))
        return runs

    def _ensure_listener(self, node: str) -> None:
        listener = self._listeners.get(node)
        if listener is None or listener.done():
            self._listeners[node] = asyncio.get_running_loop().create_task(self._listen(node))

    async def _listen(self, node: str) -> None:
        """Read the node's wake-ups while anyone waits. When Redis (or this shard) goes away,
        reconnect with a backoff (_reconnect), and wake the waiters of each channel when it is
        confirmed again, to read what was appended while nobody could hear."""
        backoff = ExponentialBackoff(cap=RECONNECT_MAX_SECONDS, base=RECONNECT_FIRST_SECONDS)
        failures = 0
        while self._events:
            try:
                if failures:
                    if not await self._reconnect(node):
                        return  # nothing left to hear on this node; the next watch starts again
                    log.warning("wake-up listener back on Redis after %d failed tries", failures)
                    failures = 0
                await self._dispatch(self._pubsubs[node])
            except redis.RedisError as exc:
                self.epoch += 1
                failures += 1
                if failures == 1:
                    log.warning("wake-up listener lost Redis: %s", exc)
                    # Waiters that have not had their subscription confirmed read anyway; they
                    # fall back on their timeouts until the connection is back.
                    for confirmed in self._confirmed.values():
                        if not confirmed.done():
                            confirmed.set_result(None)
                await asyncio.sleep(backoff.compute(failures))

    async def _reconnect(self, node: str) -> bool:
        """A fresh pub/sub connection to the node, with each of its channels subscribed again
        one command per channel. Not redis-py's own resubscription on reconnect: it sends every
        channel the connection held in one SSUBSCRIBE, which a cluster node refuses as soon as
        they hash to two slots (CROSSSLOT), so the listener never came back. Whether any
        channel is left to hear there."""
        async with self._sending.setdefault(node, asyncio.Lock()):
            dropped = self._pubsubs[node]
            with contextlib.suppress(Exception):  # it is gone already; only its socket is left
                await dropped.aclose()
                await dropped.connection_pool.disconnect()
            pubsub = self._pubsubs[node] = self._opener[node]()
            channels = [channel for channel, on in self._node_of.items() if on == node]
            for channel in channels:
                await pubsub.ssubscribe(channel)
            return bool(channels)

    async def _dispatch(self, pubsub: PubSub) -> None:
        while self._events:
            if pubsub.connection is None or not pubsub.connection.is_connected:
                # A subscribe that failed closed it. Reconnected in _listen, under the sending
                # lock: redis-py would connect it inside the read, beside a subscribe's connect.
                raise redis.ConnectionError("the pub/sub connection was closed")
            message = await pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            channel = message["channel"].decode()
            if message["type"] == "ssubscribe":
                confirmed = self._confirmed.get(channel)
                if confirmed is not None and not confirmed.done():
                    confirmed.set_result(None)
                else:  # subscribed again after a reconnect: what was appended meanwhile is unheard
                    self._wake(channel, b"")
            elif message["type"] == "smessage":
                self._wake(channel, message["data"])
            elif message["type"] == "sunsubscribe":
                self.epoch += 1  # ours (a channel left idle), or Redis moving the slot away

    def _wake(self, channel: str, data: bytes) -> None:
        for event in self._events.get(channel, ()):
            event.heard(data)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, WakeHub] = weakref.WeakKeyDictionary()


def hub() -> WakeHub:
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = WakeHub()
    return found


class Following:
    """A stream's standing subscription to a job's wake-ups (async with Following(job_id)),
    taken the first time one of its pages has to wait and held for every later page. A stream
    at a realistic pace otherwise subscribed and unsubscribed for every chunk, in turn with
    every other stream on the one pub/sub connection, and read the log three times per chunk."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.event: Woken | None = None
        self._held = contextlib.AsyncExitStack()

    @property
    def carried(self) -> list[bytes]:
        """What the wake-ups carried since the stream last took it (empty before it subscribed)."""
        return [] if self.event is None or self.event.carried is None else self.event.carried

    async def subscribe(self) -> Woken:
        if self.event is None:
            # A stream must not hold a database connection for the rest of its life.
            await release_db()
            watched = hub().watch(wake_channel(self.job_id), keeps_carried=True)
            self.event = await self._held.enter_async_context(watched)
            self._held.enter_context(metrics.reader_waiting())
            self.event.set()  # what was appended before the subscription is read first
        return self.event

    async def __aenter__(self) -> Following:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._held.aclose()


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Until the event is set or the time is up. A timeout scope around the wait, not
    asyncio.wait_for, which wraps it in a task of its own (and cancels and awaits that task when
    the time is up, as it is for every idle long-poll)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


async def wait_for(
    job_id: str,
    fetch: Callable[[], Awaitable[T]],
    ready: Callable[[T], bool],
    timeout: float,
    following: Following | None = None,
) -> T:
    """Call fetch() until ready(result) or timeout, sleeping on the job's wake channel between
    tries. Returns the last result either way. `following`: the stream's own subscription,
    instead of one for this call."""
    if following is not None:
        return await _wait_following(following, fetch, ready, timeout)
    if not hub().subscribed(wake_channel(job_id)) or timeout <= 0:
        # A page that is ready needs no subscription. On a channel still subscribed (its last
        # poll just left) the fetch inside the watch below is the only one.
        result = await fetch()
        if ready(result) or timeout <= 0:
            return result
    deadline = asyncio.get_running_loop().time() + timeout
    async with watching(job_id) as watch:
        return await watch.until(fetch, ready, deadline)


class _Unread:
    pass


_UNREAD = _Unread()


@dataclass(slots=True)
class Watch:
    """One waiter's subscription to a job's wake-ups (from `watching`)."""

    wake_hub: WakeHub
    channel: str
    event: asyncio.Event
    epoch: int | None  # the hub's epoch once subscribed; None: not confirmed, so never trusted

    async def until(
        self,
        fetch: Callable[[], Awaitable[T]],
        ready: Callable[[T], bool],
        deadline: float,
        fetched: T | _Unread = _UNREAD,
    ) -> T:
        """fetch() until ready(result) or the loop's time reaches `deadline`, waiting for a
        wake-up between tries; the last result either way. `fetched`: what a read inside this
        watch already returned, used as the first try's result instead of a fetch."""
        loop = asyncio.get_running_loop()
        while True:
            if isinstance(fetched, _Unread):
                # Clear before fetching: a wake-up that lands during the fetch then ends the
                # wait below at once instead of being lost.
                self.event.clear()
                result = await fetch()
            else:  # read after the event was registered, and it was never cleared since
                result, fetched = fetched, _UNREAD
            remaining = deadline - loop.time()
            if ready(result) or remaining <= 0:
                return result
            await _wait(self.event, remaining)
            if (
                not self.event.is_set()
                and self.epoch is not None
                and self.wake_hub.heard_since(self.channel, self.epoch)
            ):
                # The time is up and nothing was appended since the read (an idle long-poll):
                # no read again. When a wake-up may have been lost, one more read catches it.
                return result


@contextlib.asynccontextmanager
async def watching(job_id: str) -> AsyncIterator[Watch]:
    """Subscribed to the job's wake-ups (at no cost while its channel is still subscribed) for
    the reads made inside: a wake-up for anything appended after such a read is then sure to be
    heard, unless the hub's epoch moves."""
    # Give this request's database connection back to the pool before waiting: a thousand idle
    # long-polls must not hold a thousand Postgres connections.
    await release_db()
    wake_hub, channel = hub(), wake_channel(job_id)
    async with wake_hub.watch(channel) as event, metrics.reader_waiting():
        epoch = wake_hub.epoch if wake_hub.subscribed(channel) else None
        yield Watch(wake_hub, channel, event, epoch)


async def _wait_following(
    following: Following, fetch: Callable[[], Awaitable[T]], ready: Callable[[T], bool], timeout: float
) -> T:
    if following.event is None:
        # A stream that finds its page ready never subscribes.
        result = await fetch()
        if ready(result) or timeout <= 0:
            return result
    event = await following.subscribe()
    # The event is cleared just before each fetch, so while it stays unset nothing was appended
    # since the last fetch, and the next read waits for a wake-up instead of finding nothing:
    # one read per page. A fetch after the time is up catches a wake-up that was lost.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if not event.is_set() and (remaining := deadline - loop.time()) > 0:
            await _wait(event, remaining)
        event.clear()
        result = await fetch()
        if ready(result) or loop.time() >= deadline:
            return result
