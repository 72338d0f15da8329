"""What the scheduler costs an engine with no limits ("costs nothing when no limit is
configured"): the commit before it (7f29a3e) and this checkout, each its own stack (database,
Redis DB, queue), both up at once and measured in turns (before, after, before, after, ...) so
that the machine's other load falls on both alike. A turn: generations one after another on the
OpenAI face (one stream), 5 tokens at full speed; the queue stage (job created -> claimed by the
worker, from Postgres, as bench/breakdown.py splits TTFT), the client's time to first token, and
the worker's and web's CPU per job from /proc."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg

from bench import procstat
from bench.clients import Gen, Target, openai_sse
from bench.sched_stack import ROOT, SchedStack
from bench.stats import pct
from bench.wire import Connection

BEFORE = "7f29a3e"  # the last commit before the scheduler
MODEL = "fake?tokens=5"


def checkout(commit: str, into: Path) -> Path:
    """The commit's tree (git archive: no worktree or ref is added to the repository)."""
    dest = into / f"checkout-{commit}"
    if not (dest / "manage.py").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def _queue_stage(stack: SchedStack, job_ids: list[str]) -> list[float]:
    with psycopg.connect(stack.dsn, autocommit=True) as db:
        found = db.execute(
            "SELECT extract(epoch FROM started_at - created_at) FROM jobs_job"
            " WHERE id = ANY(%s::uuid[]) AND started_at IS NOT NULL",
            (job_ids,),
        ).fetchall()
    return [float(r[0]) for r in found]


async def _turn(stack: SchedStack, target: Target, n: int) -> dict[str, Any]:
    worker, web = stack.procs["worker1"].pid, stack.procs["web"].pid
    cpu0 = procstat.cpu_seconds(worker), procstat.cpu_seconds(web)
    gens = []
    conn = Connection(stack.web_port)
    try:
        for _ in range(n):
            gen = Gen("sse", time.monotonic())
            await openai_sse(conn, target, gen)
            gens.append(gen)
    finally:
        conn.close()
    await asyncio.sleep(0.5)  # the worker's commit of the last job
    worker_cpu = procstat.cpu_seconds(worker) - cpu0[0]
    web_cpu = procstat.cpu_seconds(web) - cpu0[1]
    ok = [g for g in gens if g.error is None and g.t_first is not None]
    queue = await asyncio.to_thread(_queue_stage, stack, [g.job_id for g in ok])
    ttft = [g.t_first - g.t_send for g in ok if g.t_first is not None]
    return {
        "errors": n - len(ok),
        "queue_ms": {
            "p50": round((pct(queue, 50) or 0) * 1000, 2),
            "p99": round((pct(queue, 99) or 0) * 1000, 2),
        },
        "ttft_ms": {
            "p50": round((pct(ttft, 50) or 0) * 1000, 2),
            "p99": round((pct(ttft, 99) or 0) * 1000, 2),
        },
        "worker_cpu_ms_per_job": round(worker_cpu / n * 1000, 2),
        "web_cpu_ms_per_job": round(web_cpu / n * 1000, 2),
    }


def _ms(seconds: list[float]) -> dict[str, float]:
    return {f"p{q}": round((pct(seconds, q) or 0) * 1000, 2) for q in (50, 99)}


def _summary(turns: list[dict[str, Any]]) -> dict[str, Any]:
    def med(get: Any) -> float:
        return round(statistics.median(get(t) for t in turns), 2)

    return {
        "turns": len(turns),
        "errors": sum(t["errors"] for t in turns),
        "queue_ms_p50": [t["queue_ms"]["p50"] for t in turns],
        "queue_ms_p99": [t["queue_ms"]["p99"] for t in turns],
        "ttft_ms_p50": [t["ttft_ms"]["p50"] for t in turns],
        "worker_cpu_ms_per_job": [t["worker_cpu_ms_per_job"] for t in turns],
        "web_cpu_ms_per_job": [t["web_cpu_ms_per_job"] for t in turns],
        "median": {
            "queue_ms_p50": med(lambda t: t["queue_ms"]["p50"]),
            "ttft_ms_p50": med(lambda t: t["ttft_ms"]["p50"]),
            "worker_cpu_ms_per_job": med(lambda t: t["worker_cpu_ms_per_job"]),
            "web_cpu_ms_per_job": med(lambda t: t["web_cpu_ms_per_job"]),
        },
    }


async def _measure(stacks: dict[str, SchedStack], n: int, turns: int) -> dict[str, Any]:
    targets = {}
    for label, stack in stacks.items():
        key = stack.key("one-stream")
        engine = stack.engine("no-limits", MODEL)
        targets[label] = Target(stack.web_port, stack.upstream_port, key.access, key.secret, engine, MODEL)
        await _turn(stack, targets[label], 20)  # warm-up: imports, connections, the engine built
    results: dict[str, list[dict[str, Any]]] = {label: [] for label in stacks}
    for _ in range(turns):
        for label, stack in stacks.items():
            results[label].append(await _turn(stack, targets[label], n))
    return {label: _summary(rows) for label, rows in results.items()}


def before_after(run_dir: Path, n: int, turns: int) -> dict[str, Any]:
    stacks = {
        f"before ({BEFORE})": SchedStack(
            run_dir / "before", db="spool_bench_sched_before", root=checkout(BEFORE, run_dir),
            redis_db=9, prefix="spoolschedbefore", worker_concurrency=16,
        ),
        "after (this checkout)": SchedStack(
            run_dir / "after", db="spool_bench_sched_after", redis_db=10, prefix="spoolschedafter",
            worker_concurrency=16,
        ),
    }  # fmt: skip
    try:
        for stack in stacks.values():
            stack.prepare()
            stack.start(workers=1)
        figures = asyncio.run(_measure(stacks, n, turns))
    finally:
        for stack in stacks.values():
            stack.stop_all()
    return {"generations_per_turn": n, "model": MODEL, **figures}
