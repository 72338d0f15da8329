"""The web's event loop takes in a queue of new connections 64 a turn, where libuv takes one a turn."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import uvicorn
import uvloop

from config.webloop import new_event_loop

ROOT = Path(__file__).resolve().parents[1]
WAITING = 200


class Counted(asyncio.Protocol):
    made: list[int]
    turn: list[int]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made.append(self.turn[0])

    def data_received(self, data: bytes) -> None:
        pass


def turns_to_take_in_a_queue(loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> int:
    """WAITING connections wait in the kernel's accept queue before the loop runs; how many turns
    of the loop pass until all of them are made?"""

    async def scenario() -> int:
        loop = asyncio.get_running_loop()
        turn = [0]

        def tick() -> None:  # runs once per turn of the loop
            turn[0] += 1
            loop.call_soon(tick)

        Counted.made, Counted.turn = [], turn
        server = await loop.create_server(Counted, "127.0.0.1", 0, backlog=1024)
        port = server.sockets[0].getsockname()[1]
        # Blocking connects complete in the kernel: the server's loop does not run meanwhile.
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(WAITING)]
        try:
            loop.call_soon(tick)
            while len(Counted.made) < WAITING and turn[0] < 10 * WAITING:
                await asyncio.sleep(0)
            assert len(Counted.made) == WAITING
            return turn[0]
        finally:
            for client in clients:
                client.close()
            server.close()
            await server.wait_closed()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(scenario())


def test_a_queue_of_new_connections_is_taken_in_within_a_few_turns_of_the_loop():
    # 64 a turn (config/webloop.py ACCEPTS_PER_READINESS), then a turn or two to hand them over.
    assert turns_to_take_in_a_queue(new_event_loop) <= 8


def test_libuv_still_takes_one_connection_a_turn():
    # Why config/webloop.py exists: when this fails, libuv accepts in a batch again (as it did
    # until libuv/libuv#3696) and the web can go back to uvloop's own create_server.
    assert turns_to_take_in_a_queue(uvloop.new_event_loop) >= WAITING // 2


def test_uvicorn_takes_the_loop_scripts_web_sh_names():
    web_sh = (ROOT / "scripts" / "web.sh").read_text()
    named = re.search(r"--loop (\S+)", web_sh)
    assert named is not None
    assert uvicorn.Config("config.asgi:application", loop=named[1]).get_loop_factory() is new_event_loop


def test_a_connection_taken_in_is_served_and_a_closed_server_refuses_new_ones():
    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        assert server.is_serving() and server.get_loop() is loop
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"spool\n")
        assert await reader.readline() == b"spool\n"
        writer.close()
        server.close()
        await server.wait_closed()
        assert not server.is_serving()
        try:
            await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return
        raise AssertionError("a closed server accepted a connection")

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(scenario())


# Run in a process of its own: it lowers the limit on open files.
OUT_OF_DESCRIPTORS = """
import asyncio, logging, resource, socket, subprocess, sys
from config.webloop import new_event_loop

logging.basicConfig(level=logging.ERROR, stream=sys.stdout, format="%(message)s")
made = []

class Counted(asyncio.Protocol):
    def connection_made(self, transport):
        made.append(transport)

async def scenario():
    server = await asyncio.get_running_loop().create_server(Counted, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    # Ten clients from another process, started before the limit falls.
    clients = subprocess.Popen([sys.executable, "-c",
        "import socket, sys; s = [socket.create_connection(('127.0.0.1', %d)) for _ in range(10)];"
        " print(flush=True); sys.stdin.read()" % port], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    clients.stdout.readline()  # all ten wait in the accept queue
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    spare = socket.socket()  # the next free descriptor: four more fit under the limit
    resource.setrlimit(resource.RLIMIT_NOFILE, (spare.fileno() + 4, hard))
    spare.close()
    for _ in range(500):
        if made:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)
    print("made while short:", len(made), flush=True)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    for _ in range(500):
        if len(made) == 10:
            break
        await asyncio.sleep(0.01)
    print("made after:", len(made), flush=True)
    clients.kill()
    server.close()

asyncio.Runner(loop_factory=new_event_loop).run(scenario())
"""


def test_it_takes_in_connections_again_once_descriptors_are_free():
    done = subprocess.run(
        [sys.executable, "-c", OUT_OF_DESCRIPTORS],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("cannot accept connections (") for line in lines), lines
    short = int(next(line for line in lines if line.startswith("made while short:")).split(":")[1])
    assert 0 < short < 10
    assert "made after: 10" in lines
