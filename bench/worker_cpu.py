"""The worker's CPU per chunk, per-job costs included, without the web's reads or the rest of the
benchmark: N generations nobody reads, started through the web, carried by one worker; its CPU
(from /proc, robust to other work on the machine) divided by the content chunks it appended.
Each shape is run `--repeat` times in one stack so a change can be judged by its spread.

    .venv/bin/python -m bench.worker_cpu [--repeat 3] [--generations 100] [--profile]

Shapes: 100 tokens at 100 tok/s (the cells' realistic pace; per-job costs spread over 100
chunks), 200 tokens at full speed, and 5 tokens at full speed, whose CPU per job is nearly all
per-job cost (Celery's delivery and ack, claim, upstream request, commit, the log's ending).
--profile samples the worker with py-spy during one more run of the first shape and keeps its
hottest frames. Writes run/bench/worker_cpu.json."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
from pathlib import Path
from typing import Any

from bench import processes, procstat
from bench.capacity import worker_pace
from bench.clients import Target
from bench.processes import ROOT, Stack
from bench.profile import PY_SPY, top_frames
from bench.stats import AppendLog

# Its own database, Redis DB and queue: a benchmark someone else runs meanwhile stays apart.
processes.DB_NAME = "spool_bench_worker"
processes.REDIS_URL = "redis://127.0.0.1:6379/13"
processes.PREFIX = processes.QUEUE = "spoolbenchworker"

SHAPES = ((100, 100.0), (200, 0.0), (5, 0.0))  # (tokens, tokens/s; 0 = full speed)


def _target(stack: Stack, tokens: int, tps: float) -> Target:
    model = f"fake?tokens={tokens}" + (f"&tps={tps:g}" if tps else "")
    return Target(stack.web_port, stack.upstream_port, stack.access_key, stack.secret_key,
                  stack.engine(tokens, tps), model)  # fmt: skip


async def _profiled(stack: Stack, target: Target, log: AppendLog, n: int, tokens: int, tps: float) -> Any:
    if not PY_SPY.exists() and not shutil.which("py-spy"):
        return {"error": "py-spy is not installed"}
    out = stack.run_dir / "profile-worker-cpu.txt"
    spy = await asyncio.create_subprocess_exec(
        str(PY_SPY), "record", "--pid", str(stack.pid("worker")), "--duration", "6", "--rate", "200",
        "--nonblocking", "--function", "--gil", "--threads", "--format", "raw", "--output", str(out),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await worker_pace(stack, target, log, n, tokens, tps)
    await spy.wait()
    return top_frames(out, n=25) if out.exists() else {"error": "py-spy wrote nothing"}


def _thread_cpu(pid: int) -> dict[int, tuple[float, float]]:
    """(user, system) CPU seconds of each live thread of a process."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            raw = (task / "stat").read_text()
            fields = raw[raw.rindex(")") + 2 :].split()
            out[int(task.name)] = (int(fields[11]) / procstat.TICKS, int(fields[12]) / procstat.TICKS)
    return out


def _by_thread(
    pid: int, before: dict[int, tuple[float, float]], after: dict[int, tuple[float, float]]
) -> dict[str, tuple[float, float]]:
    """Where a run's CPU went: the main thread (Celery's consumer, taking messages from the broker), the
    busiest other thread (the event loop), and every other thread (Celery's task threads: claim,
    load, commit; the sweeper, metrics). Each as (user, system) seconds."""
    used = {
        tid: (u - before.get(tid, (0.0, 0.0))[0], s - before.get(tid, (0.0, 0.0))[1])
        for tid, (u, s) in after.items()
    }
    main = used.pop(pid, (0.0, 0.0))
    loop_tid = max(used, key=lambda tid: sum(used[tid]), default=None)
    loop = used.pop(loop_tid, (0.0, 0.0)) if loop_tid is not None else (0.0, 0.0)
    rest = (sum(u for u, _ in used.values()), sum(s for _, s in used.values()))
    return {name: (round(u, 2), round(s, 2)) for name, (u, s) in
            (("main", main), ("loop", loop), ("other_threads", rest))}  # fmt: skip


async def _run(
    stack: Stack, target: Target, log: AppendLog, n: int, tokens: int, tps: float
) -> dict[str, Any]:
    pid = stack.pid("worker")
    before = _thread_cpu(pid)
    # worker_pace uses the pace only for its deadline.
    row = await worker_pace(stack, target, log, n, tokens, tps or 1000.0)
    row["cpu_seconds_by_thread"] = _by_thread(pid, before, _thread_cpu(pid))
    return row


async def measure(stack: Stack, n: int, repeat: int, profile: bool) -> dict[str, Any]:
    log = AppendLog(stack.append_log)
    figures: dict[str, Any] = {"generations": n, "shapes": {}}
    targets = {(tokens, tps): _target(stack, tokens, tps) for tokens, tps in SHAPES}
    await worker_pace(stack, targets[SHAPES[0]], log, 20, *SHAPES[0])  # warm-up: imports, pools
    for (tokens, tps), target in targets.items():
        runs = [await _run(stack, target, log, n, tokens, tps) for _ in range(repeat)]
        per_chunk = [r["worker_cpu_us_per_chunk"] for r in runs]
        figures["shapes"][f"{tokens} tokens at {f'{tps:g} tok/s' if tps else 'full speed'}"] = {
            "worker_cpu_us_per_chunk": per_chunk,
            "median": statistics.median(per_chunk),
            "worker_cpu_ms_per_job": [r["worker_cpu_ms_per_job"] for r in runs],
            "errors": [r["errors"] for r in runs],
            "rate_p10": [r["worker_rate_tok_s"]["p10"] for r in runs],
            "start_delay_ms_p50": [r["start_delay_ms"]["p50"] for r in runs],
            "cpu_seconds_by_thread": [r["cpu_seconds_by_thread"] for r in runs],
        }
    if profile:
        figures["profile"] = await _profiled(stack, targets[SHAPES[0]], log, n, *SHAPES[0])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--generations", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    stack = Stack(run_dir=ROOT / "run" / "bench", worker_concurrency=args.generations + 50)
    stack.measure(lambda s: measure(s, args.generations, args.repeat, args.profile), "worker_cpu")


if __name__ == "__main__":
    main()
