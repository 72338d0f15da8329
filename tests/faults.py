"""Real infrastructure faults for tests, on loopback only: a Redis server of the test's own that
can be killed and restarted, and a TCP proxy in front of Postgres that can be cut."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import threading
import time

import redis

from harness.processes import free_port


class OwnRedis:
    """A redis-server on a free port, without persistence, as the machine's own runs."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)


class CuttableProxy:
    """Forwards 127.0.0.1:port to a target; cut() drops every connection and refuses new ones
    until restore(), as a database that went away would; lose_answer_to() cuts as a statement's
    answer comes back."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self._down = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._lose_answer_to: tuple[bytes, ...] = ()
        self.answer_lost = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers |= {writer, up_writer}
        # Of the statements whose answer is to be lost: those this connection sent, in order.
        armed: tuple[bytes, ...] = ()
        sent = 0
        awaiting_lost_answer = False

        async def to_server() -> None:
            nonlocal armed, sent, awaiting_lost_answer
            with contextlib.suppress(Exception):
                while data := await reader.read(65536):
                    if armed is not self._lose_answer_to:
                        armed, sent = self._lose_answer_to, 0
                    if armed and armed[sent] in data:
                        sent += 1
                        if sent == len(armed):
                            self._lose_answer_to = ()
                            awaiting_lost_answer = True
                    up_writer.write(data)
                    await up_writer.drain()
            up_writer.close()

        async def to_client() -> None:
            with contextlib.suppress(Exception):
                while data := await up_reader.read(65536):
                    if awaiting_lost_answer:
                        # The database has done the statement; its client never hears so.
                        self._drop()
                        self.answer_lost.set()
                        return
                    writer.write(data)
                    await writer.drain()
            writer.close()

        await asyncio.gather(to_server(), to_client())
        self._writers -= {writer, up_writer}

    @property
    def connections(self) -> int:
        """How many connections it carries now."""
        return len(self._writers) // 2

    def lose_answer_to(self, *statements: bytes) -> None:
        """The database's answer to the next statement containing the last of `statements`, sent
        on a connection that sent the others before it in this order, is lost in a cut() (until
        restore()), as when the network fails between the two: the statement was done, and its
        client cannot know it. answer_lost is set then."""
        self.answer_lost.clear()
        self._lose_answer_to = statements

    def _drop(self) -> None:
        self._down = True
        for writer in list(self._writers):
            writer.transport.abort()

    def cut(self) -> None:
        self._loop.call_soon_threadsafe(self._drop)
        time.sleep(0.1)

    def restore(self) -> None:
        # The network is whole again: a loss still armed (its statement never came) is dropped
        # too, so it cannot fall on a later test's statement.
        self._lose_answer_to = ()
        self._down = False
