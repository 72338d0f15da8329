"""CPU per delivered chunk of the upstream engine alone: K concurrent UpstreamEngine streams on one
event loop against the fake upstream (python -m bench.upstream_cpu).

The fake upstream runs in a process of its own, so the CPU counted here (time.process_time of this
process, every thread) is only the engine's side: the HTTP client, SSE parsing, JSON and chunk
building. Each case runs --repeat times after one warm-up; the report gives the median and the
spread, because the machine is shared and one run can be unlucky. Each run prints its wall time
too: a paced run should take about tokens/tps seconds, and one that took much longer fell behind
(a busy machine slowed the fake upstream), so several tokens came per read and its figure is too
low. Compare runs that kept the pace.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from engine import upstream
from engine.types import GenerationRequest
from engine.upstream import UpstreamEngine


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    streams: int
    tokens: int
    tps: float  # 0: as fast as the fake can send


@dataclass(frozen=True, slots=True)
class Run:
    cpu: float  # seconds of this process's CPU
    wall: float
    chunks: int

    @property
    def us_per_chunk(self) -> float:
        return self.cpu / self.chunks * 1e6


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def fake_upstream() -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "fakeupstream", "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"{base}/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the fake upstream did not start") from None
                time.sleep(0.05)
        yield f"{base}/v1"
    finally:
        process.terminate()
        process.wait(10)


def _new_loop() -> asyncio.AbstractEventLoop:
    # The worker's choice (jobs/worker/runtime.py): uvloop where it is installed.
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def _drive(base_url: str, case: Case) -> Run:
    model = f"fake?tokens={case.tokens}" + (f"&tps={case.tps:g}" if case.tps else "")
    engine = UpstreamEngine({"base_url": base_url, "model": model, "read_timeout": 30})
    request = GenerationRequest(messages=[{"role": "user", "content": "Tell me a story."}])

    async def one() -> int:
        count = 0
        async for _chunk in engine.stream(request):
            count += 1
        return count

    cpu, wall = time.process_time(), time.perf_counter()
    counts = await asyncio.gather(*(one() for _ in range(case.streams)))
    return Run(time.process_time() - cpu, time.perf_counter() - wall, sum(counts))


def measure(base_url: str, case: Case, repeat: int) -> list[Run]:
    loop = _new_loop()
    try:
        # Warm-up: imports, the pool's first connections, caches.
        loop.run_until_complete(_drive(base_url, Case("warm-up", case.streams, 20, 0)))
        return [loop.run_until_complete(_drive(base_url, case)) for _ in range(repeat)]
    finally:
        loop.run_until_complete(upstream.close_shared_client())
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.upstream_cpu", description=__doc__)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--paced-tokens", type=int, default=300, help="tokens per stream at --tps")
    parser.add_argument("--tps", type=float, default=100)
    parser.add_argument("--fast-tokens", type=int, default=500, help="tokens per stream, unpaced")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cases = [
        Case(f"K={args.streams}, {args.tps:g} tok/s", args.streams, args.paced_tokens, args.tps),
        Case(f"K={args.streams}, full speed", args.streams, args.fast_tokens, 0),
    ]
    print(f"python {sys.version.split()[0]}, pid {os.getpid()}, loop {type(_new_loop()).__module__}")
    with fake_upstream() as base_url:
        for case in cases:
            runs = measure(base_url, case, args.repeat)
            figures = sorted(run.us_per_chunk for run in runs)
            each = ", ".join(f"{r.us_per_chunk:.1f} ({r.chunks} chunks, {r.wall:.1f} s)" for r in runs)
            print(
                f"{case.name}: {statistics.median(figures):.1f} µs CPU per chunk "
                f"(spread {figures[0]:.1f}-{figures[-1]:.1f}; runs: {each})",
                flush=True,
            )


if __name__ == "__main__":
    main()
