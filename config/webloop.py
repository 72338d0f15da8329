"""The web's event loop: uvloop, with new connections accepted as fast as they arrive.

libuv accepts one connection per turn of its loop (libuv/libuv#3696, 2022: "accepting in a
loop is nearly always suboptimal"). A web process whose loop is busy takes in as many new
connections a second as its loop turns (40 to 200 with turns of 5 to 25 ms), while every request
on a connection it already holds is served: measured with 500 SEMOSS clients arriving in one
second on one web process, ~430 connections sat in the kernel's accept queue, drained at ~14 a
second, and half of the first requests waited 12-13 s to be read while later requests on kept
connections were answered in 0.2-1 s (docs/PERFORMANCE.md, "Issue 29 (7)").
asyncio's own loop accepts up to `backlog` connections per readiness; this loop accepts up to 64
on uvloop, through public API only: the server's sockets are bound by uvloop and never listened on by
libuv (start_serving=False); Spool listens on them, accepts in a batch, and hands each connection to
uvloop (connect_accepted_socket), where it is served as libuv's own would be.

uvicorn takes it as `--loop config.webloop:new_event_loop` (scripts/web.sh).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable, Iterable
from typing import Any

import uvloop

logger = logging.getLogger(__name__)

# What asyncio's own loop waits before trying again after running out of file descriptors or
# buffers (asyncio.constants.ACCEPT_RETRY_DELAY); the connections wait in the kernel meanwhile.
ACCEPT_RETRY_DELAY_SECONDS = 1.0
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
# At most this many per readiness (asyncio takes up to the backlog): web processes forked on one
# socket are all woken, and a connection stays with the one that took it. Two busy processes, 500
# connections at once: the backlog each time split them 448/52 and 67/433 (all in 0.04-0.09 s),
# 64 split them 244/256 to 308/192 (all in 0.05-0.17 s), uvloop's one a turn 249/251 (1.3 s).
ACCEPTS_PER_READINESS = 64


def new_event_loop() -> asyncio.AbstractEventLoop:
    return Loop()


class Loop(uvloop.Loop):
    async def create_server(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: Any = None,
        port: Any = None,
        *,
        backlog: int = 100,
        ssl: Any = None,
        start_serving: bool = True,
        **kwargs: Any,
    ) -> asyncio.AbstractServer:
        # TLS (uvicorn --ssl-*) and a server started later are left to uvloop as they are.
        if ssl is not None or not start_serving:
            return await super().create_server(
                protocol_factory, host, port, backlog=backlog, ssl=ssl, start_serving=start_serving, **kwargs
            )
        bound = await super().create_server(
            protocol_factory, host, port, backlog=backlog, start_serving=False, **kwargs
        )
        return BatchAcceptingServer(self, bound, protocol_factory, backlog)


class BatchAcceptingServer(asyncio.AbstractServer):
    """Serves the sockets of `bound` (a uvloop server that never listens), accepting up to
    ACCEPTS_PER_READINESS connections each time one of them is readable."""

    def __init__(
        self,
        loop: Loop,
        bound: asyncio.AbstractServer,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        backlog: int,
    ) -> None:
        self._loop, self._bound, self._factory, self._backlog = loop, bound, protocol_factory, backlog
        # Handing a connection over is a coroutine; its task is kept until it is done, since the
        # loop holds only a weak reference to it.
        self._handing_over: set[asyncio.Task[Any]] = set()
        self._listening: list[socket.socket] = []
        try:
            for pseudo in bound.sockets:  # type: ignore[attr-defined]
                # A duplicate of uvloop's descriptor, so closing either side leaves the other valid.
                listening = socket.socket(fileno=socket.dup(pseudo.fileno()))
                self._listening.append(listening)
                listening.setblocking(False)
                listening.listen(backlog)
                loop.add_reader(listening.fileno(), self._accept, listening)
        except BaseException:
            self.close()
            raise

    def _accept(self, listening: socket.socket) -> None:
        for _ in range(min(self._backlog, ACCEPTS_PER_READINESS)):
            try:
                connection, _ = listening.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client gave up while it waited: the next one may not have
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    raise
                logger.error(
                    "cannot accept connections (%s); trying again in %g s", exc, ACCEPT_RETRY_DELAY_SECONDS
                )
                self._loop.remove_reader(listening.fileno())
                self._loop.call_later(ACCEPT_RETRY_DELAY_SECONDS, self._resume, listening)
                return
            connection.setblocking(False)
            task = self._loop.create_task(self._loop.connect_accepted_socket(self._factory, connection))
            self._handing_over.add(task)
            task.add_done_callback(self._handed_over)

    def _resume(self, listening: socket.socket) -> None:
        if listening in self._listening:
            self._loop.add_reader(listening.fileno(), self._accept, listening)

    def _handed_over(self, task: asyncio.Task[Any]) -> None:
        self._handing_over.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Where uvloop reports an error of a connection it accepted itself.
            self._loop.call_exception_handler(
                {"message": "a new connection could not be served", "exception": task.exception()}
            )

    # asyncio.AbstractServer, as uvicorn uses it.

    @property
    def sockets(self) -> Iterable[Any]:
        return self._bound.sockets  # type: ignore[attr-defined]

    def close(self) -> None:
        for listening in self._listening:
            self._loop.remove_reader(listening.fileno())
            listening.close()
        self._listening = []
        self._bound.close()

    async def wait_closed(self) -> None:
        await self._bound.wait_closed()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return bool(self._listening)

    async def start_serving(self) -> None:
        pass  # serving since it was made

    async def serve_forever(self) -> None:
        # As asyncio's: serves until cancelled, then closes.
        try:
            await self._loop.create_future()
        finally:
            self.close()
