"""How long the offline engine holds the event loop in one step at full speed (p50, p99, max)."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from engine.offline import OfflineEngine
from engine.offline.tokenizer import EOT_ID
from engine.types import GenerationRequest

TOKENS = 1000
CASES: list[tuple[str, dict[str, Any]]] = [
    ("n=1", {"n": 1}),
    ("n=4", {"n": 4}),
    ("n=1, top_logprobs=20", {"n": 1, "logprobs": True, "top_logprobs": 20}),
]


def _timed_handles(walls: list[float], cpus: list[float]) -> Any:
    """Times every callback the loop runs; a task's step between two awaits is one callback.

    Both wall time (what other tasks on the loop wait) and this thread's CPU time: on a shared
    machine the process is sometimes preempted mid-step, which shows in the first only.
    """
    run = asyncio.Handle._run

    def timed(handle: asyncio.Handle) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            run(handle)
        finally:
            walls.append(time.perf_counter() - wall)
            cpus.append(time.thread_time() - cpu)

    asyncio.Handle._run = timed  # type: ignore[method-assign]
    return run


async def _generate(engine: OfflineEngine, request: GenerationRequest) -> int:
    chunks = 0
    async for _ in engine.stream(request):
        chunks += 1
    return chunks


def measure(engine: OfflineEngine, fields: dict[str, Any]) -> tuple[list[float], list[float], int]:
    request = GenerationRequest(
        messages=[{"role": "user", "content": "Speak to me of the noble king"}],
        seed=1,
        max_tokens=TOKENS,
        logit_bias={EOT_ID: -100.0},  # no early end: every choice writes TOKENS tokens
        **fields,
    )
    walls: list[float] = []
    cpus: list[float] = []
    original = _timed_handles(walls, cpus)
    try:
        chunks = asyncio.run(_generate(engine, request))
    finally:
        asyncio.Handle._run = original  # type: ignore[method-assign]
    return walls, cpus, chunks


def _figures(seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p99 = ms[round(0.99 * (len(ms) - 1))]
    return f"p50 {statistics.median(ms):.3f}  p99 {p99:.3f}  max {ms[-1]:.3f} ms"


def main() -> None:
    engine = OfflineEngine({})
    asyncio.run(_generate(engine, GenerationRequest(messages=[], max_tokens=5)))  # loads the model
    print(f"offline engine at full speed, {TOKENS} tokens per choice; one loop step = one callback")
    for name, fields in CASES:
        walls, cpus, chunks = measure(engine, fields)
        print(f"{name:22} steps {len(walls):4}  chunks {chunks:5}")
        print(f"{'':22} wall  {_figures(walls)}")
        print(f"{'':22} CPU   {_figures(cpus)}")


if __name__ == "__main__":
    main()
