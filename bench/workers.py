"""Capacity of several worker processes together (one per core): N paced generations nobody
reads, started through the web, carried by W workers on one queue; each job's pace from the
workers' own appends, against the upstream's own pace at the same concurrency.

    .venv/bin/python -m bench.workers [--workers 2] [--generations 500]

Prints the figures as JSON and writes them to run/bench/workers.json."""

from __future__ import annotations

import argparse
from typing import Any

from bench import procstat
from bench.capacity import direct_pace, kept_up, worker_pace
from bench.clients import Target
from bench.processes import ROOT, Stack
from bench.progress import Progress
from bench.stats import AppendLog

PACE, TOKENS = 100.0, 500


async def measure(stack: Stack, workers: int, n: int) -> dict[str, Any]:
    target = Target(stack.web_port, stack.upstream_port, stack.access_key, stack.secret_key,
                    stack.engine(TOKENS, PACE), f"fake?tokens={TOKENS}&tps={PACE:g}")  # fmt: skip
    log = AppendLog(stack.append_log)
    progress = Progress(2)
    progress.start(f"the upstream alone: {n} streams of {TOKENS} tokens at {PACE:g} tok/s")
    upstream = await direct_pace(target, n)
    progress.done(n, "streams")
    cpu0 = {name: procstat.cpu_seconds(stack.pid(name)) for name in stack.procs if name.startswith("worker")}
    progress.start(f"{workers} workers: {n} generations through the web")
    row = await worker_pace(stack, target, log, n, TOKENS, PACE)
    progress.done(row["finished"], "generations finished", errors=row["errors"])
    cpu1 = {name: procstat.cpu_seconds(stack.pid(name)) for name in cpu0}
    return {
        "workers": workers,
        "generations": n,
        "finished": row["finished"],
        "errors": row["errors"],
        "worker_rate_tok_s": row["worker_rate_tok_s"],
        "upstream_direct_rate_tok_s": upstream,
        "kept_up": kept_up(row, upstream, PACE),
        "worker_cpu_seconds": {name: round(cpu1[name] - cpu0[name], 1) for name in cpu0},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--generations", type=int, default=500)
    args = parser.parse_args()
    stack = Stack(run_dir=ROOT / "run" / "bench", worker_concurrency=args.generations // args.workers + 50)
    stack.measure(lambda s: measure(s, args.workers, args.generations), "workers", workers=args.workers)


if __name__ == "__main__":
    main()
