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


# The untyped requests a client may send before its startup message (each answered by one byte).
_SSL_REQUEST, _GSSENC_REQUEST = 80877103, 80877104
_STARTUP_MAX_BYTES = 10_000


class StatementReader:
    """Reads a Postgres client's side of a connection: the text of each statement it runs, when
    it runs it. A simple query carries its text; an extended query's Bind names a statement that
    an earlier Parse gave its text, on this connection. A prepared statement is parsed once, then
    run many times by name with no text (psycopg: prepare=True), and a statement parsed without
    being run (preparing) is not run yet. Gives up on a stream that is not Postgres's."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._started = False
        self._postgres = True
        self._parsed: dict[bytes, bytes] = {}

    def feed(self, data: bytes) -> list[bytes]:
        """The texts of the statements `data` runs, in order (a message cut across reads counts
        when its end comes)."""
        if not self._postgres:
            return []
        self._buffer += data
        run = []
        while (message := self._message()) is not None:
            kind, body = message
            if kind == b"P":
                name, text = body.split(b"\0", 2)[:2]
                self._parsed[name] = text
            elif kind == b"B":
                run.append(self._parsed.get(body.split(b"\0", 2)[1], b""))
            elif kind == b"Q":
                run.append(body.rstrip(b"\0"))
        return run

    def _message(self) -> tuple[bytes, bytes] | None:
        buffer = self._buffer
        if not self._started:
            # Untyped: length, then a request code or protocol version.
            if len(buffer) < 8:
                return None
            length = int.from_bytes(buffer[:4], "big")
            if not 8 <= length <= _STARTUP_MAX_BYTES:
                self._postgres = False
                return None
            if len(buffer) < length:
                return None
            self._started = int.from_bytes(buffer[4:8], "big") not in (_SSL_REQUEST, _GSSENC_REQUEST)
            del buffer[:length]
            return b"", b""
        if len(buffer) < 5:
            return None
        length = int.from_bytes(buffer[1:5], "big")
        if len(buffer) < 1 + length:
            return None
        kind, body = bytes(buffer[:1]), bytes(buffer[5 : 1 + length])
        del buffer[: 1 + length]
        return kind, body


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
        statements = StatementReader()
        # Of the statements whose answer is to be lost: those this connection ran, in order.
        armed: tuple[bytes, ...] = ()
        sent = 0
        awaiting_lost_answer = False

        async def to_server() -> None:
            nonlocal armed, sent, awaiting_lost_answer
            with contextlib.suppress(Exception):
                while data := await reader.read(65536):
                    for text in statements.feed(data):
                        if armed is not self._lose_answer_to:
                            armed, sent = self._lose_answer_to, 0
                        if armed and armed[sent] in text:
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
        """The database's answer to the next statement whose text contains the last of
        `statements`, run on a connection that ran the others before it in this order (prepared
        or not: StatementReader), is lost in a cut() (until
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
