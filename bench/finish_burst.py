"""Do generations that end together slow the ones still running? Long paced generations run on one
worker; while they stream, a burst of short ones starts and ends at once (each ending is a Postgres
commit: job row, stored completion). Compares the running ones' pace before and during the burst.

    .venv/bin/python -m bench.finish_burst [--running 100] [--burst 200]

Prints the figures as JSON and writes them to run/bench/finish_burst.json."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench.clients import Target, fan_out, start_semoss_job
from bench.processes import ROOT, Stack
from bench.stats import AppendLog, pct

PACE = 100.0


def _paces(log: AppendLog, jobs: list[str], start: float, end: float) -> dict[str, float | None]:
    """Per running job, chunks appended per second in [start, end): the p50 and slowest tenth."""
    rates = []
    for job in jobs:
        count = sum(a.count for a in log.by_job.get(job, []) if start <= a.before < end)
        rates.append(count / (end - start))
    return {q: None if (v := pct(rates, n)) is None else round(v, 1) for q, n in (("p50", 50), ("p10", 10))}


async def measure(stack: Stack, running: int, burst: int) -> dict[str, Any]:
    def target(tokens: int, tps: float) -> Target:
        return Target(stack.web_port, stack.upstream_port, stack.access_key, stack.secret_key,
                      stack.engine(tokens, tps), "")  # fmt: skip

    long_target, short_target = target(int(PACE * 12), PACE), target(20, 0)
    log = AppendLog(stack.append_log)
    await fan_out(2, stack.web_port, lambda conn, i: start_semoss_job(conn, short_target))  # warm-up
    await asyncio.sleep(2)
    long_jobs = await fan_out(running, stack.web_port, lambda conn, i: start_semoss_job(conn, long_target))
    await asyncio.sleep(4)  # every long one is streaming
    burst_start = time.monotonic()
    short_jobs = await fan_out(burst, stack.web_port, lambda c, i: start_semoss_job(c, short_target), 50)
    ended: set[str] = set()
    while len(ended) < burst and time.monotonic() < burst_start + 60:
        await asyncio.sleep(0.2)
        ended |= {job for job, a in log.read_new() if a.end and job in set(short_jobs)}
    burst_end = time.monotonic()
    await asyncio.sleep(1.5)
    log.read_new()
    window = burst_end - burst_start
    return {
        "running": running,
        "burst": burst,
        "burst_ended": len(ended),
        "burst_seconds": round(window, 2),
        "pace_before_tok_s": _paces(log, long_jobs, burst_start - max(window, 1.0), burst_start),
        "pace_during_tok_s": _paces(log, long_jobs, burst_start, burst_end),
        "upstream_pace_tok_s": PACE,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--running", type=int, default=100)
    parser.add_argument("--burst", type=int, default=200)
    args = parser.parse_args()
    stack = Stack(run_dir=ROOT / "run" / "bench", worker_concurrency=args.running + args.burst + 20)
    stack.measure(lambda s: measure(s, args.running, args.burst), "finish_burst")


if __name__ == "__main__":
    main()
