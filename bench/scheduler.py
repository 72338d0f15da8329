"""The scheduler against the issue's targets (docs/SCHEDULING.md), every scenario bounded in time,
on loopback only:

    .venv/bin/python -m bench.scheduler                      # every scenario (about 20 min)
    .venv/bin/python -m bench.scheduler --only capacity lease --quick

capacity (a limited engine against an upstream with the same limit, and the same engine with no
limit), fairness, priority, lease (a worker SIGKILLed), idempotency, before-after (an engine with
no limits, the commit before the scheduler against this checkout). A whole run writes
docs/scheduler-bench.json and the generated part of PERFORMANCE.md's "Scheduler
(bench.scheduler)" section; a partial or quick one writes run/bench-scheduler/ only."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
import time
from collections.abc import Awaitable
from dataclasses import asdict, dataclass, replace
from typing import Any

from bench import procstat, sched_report
from bench import sched_inproc as inproc
from bench.pipeline import wait_until_quiet
from bench.progress import Progress
from bench.sched_before_after import before_after
from bench.sched_faults import drop_a_message, idempotency, lease, lost_message
from bench.sched_scenarios import Shape, capacity, fairness, priority
from bench.sched_stack import ROOT, SchedStack
from bench.sched_ways import Ways, probe

SCENARIOS = ("capacity", "fairness", "priority", "idempotency", "lease", "lost-message", "before-after")
# A dropped message is looked at this long after (SPOOL_REQUEUE_AFTER_SECONDS, 120, then sweeps).
LOST_MESSAGE_AFTER = 180.0
RUN_DIR = ROOT / "run" / "bench-scheduler"
BEFORE_AFTER_WHAT = "the commit before the scheduler and this checkout, one stream, turns alternated"


@dataclass(frozen=True)
class Plan:
    capacity_jobs: int = 500
    capacity_tokens: int = 20
    capacity_tps: float = 60.0  # 0.33 s a generation
    capacity_limit: int = 4
    fairness_limit: int = 16
    fairness_tokens: int = 20
    fairness_tps: float = 20.0  # 1 s a generation: 16 jobs/s, below what one web process creates here
    # Generations of one length end together when they started together (a backlog's first
    # slots), then free their slots in bursts, which no real model does: 0.5 to 1.5 s.
    fairness_vary: float = 0.5
    # Owner A's backlog. The 5,000 would take 5 min at 16 jobs/s, three times (A with B,
    # A alone, A in B's class): scaled down to about a minute each.
    fairness_jobs: int = 1000
    fairness_note: str = "N scaled down from 5,000 to 1,000 (a minute a run at 16 jobs/s, three runs)."
    priority_backlog: int = 1000
    lease_jobs: int = 8
    lease_limit: int = 4
    # Long enough for the second worker to start while the victim's jobs still run.
    lease_tokens: int = 90
    lease_tps: float = 1.0
    idempotency_callers: int = 100
    before_after_generations: int = 100
    before_after_turns: int = 3  # per checkout, alternated
    repeat: int = 2  # of the cheap scenarios (capacity, priority, idempotency)
    workers: int = 2
    worker_concurrency: int = 64


QUICK = Plan(
    capacity_jobs=100,
    fairness_jobs=200,
    fairness_note="Quick run: N = 200.",
    priority_backlog=300,
    before_after_generations=30,
    before_after_turns=1,
    repeat=1,
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _our_cpu(stack: SchedStack) -> float:
    live = [p.pid for p in stack.procs.values() if p.poll() is None]
    return sum(procstat.cpu_seconds(pid) for pid in live) + procstat.cpu_seconds(os.getpid())


async def _measured(
    stack: SchedStack, progress: Progress, what: str, run: Awaitable[dict[str, Any]]
) -> dict[str, Any]:
    """The scenario's figures, with the load on the machine meanwhile that was not this
    benchmark's own (other sessions' tests, and the shared Postgres and Redis)."""
    progress.start(what)
    busy0, ours0, t0 = procstat.machine_busy_seconds(), _our_cpu(stack), time.monotonic()
    figures = await run
    elapsed = time.monotonic() - t0
    other = (procstat.machine_busy_seconds() - busy0 - (_our_cpu(stack) - ours0)) / elapsed
    figures["machine"] = {"other_cores": round(max(0.0, other), 2)}
    said = ", ".join(f"{k}={v}" for k, v in figures.items() if not isinstance(v, dict | list))
    progress.done(detail=said[:400])
    return figures


async def _scenarios(stack: SchedStack, plan: Plan, only: set[str], progress: Progress) -> dict[str, Any]:
    a, b, idem = stack.key("tenant-a"), stack.key("tenant-b"), stack.key("idempotency")
    inproc.setup(stack)
    ways: Ways = await probe(
        stack, a, await asyncio.to_thread(inproc.engine, stack, "probe", "fake?tokens=2", None)
    )
    out: dict[str, Any] = {"ways": ways.describe()}
    if "lost-message" in only:  # first: the dropped message's job is looked at at the end
        lost_engine = await asyncio.to_thread(inproc.engine, stack, "lost-message", "fake?tokens=2", 4)
        lost_job = await asyncio.to_thread(drop_a_message, stack, a, lost_engine)
        lost_since = time.monotonic()
    cap = Shape(plan.capacity_tokens, plan.capacity_tps)
    fair = Shape(plan.fairness_tokens, plan.fairness_tps, plan.fairness_vary)
    if "capacity" in only:
        out["capacity"] = []
        for i in range(plan.repeat):
            for limited in (True, False):
                what = f"capacity: {plan.capacity_jobs} jobs, engine " + (
                    "limited" if limited else "not limited"
                )
                tag = f"c{i}" + ("l" if limited else "u")
                run = capacity(stack, a, cap, plan.capacity_jobs, plan.capacity_limit, limited, tag)
                out["capacity"].append(await _measured(stack, progress, what, run))
    if "fairness" in only:
        out["fairness"] = []
        for a_priority, b_jobs in (("batch", 50), ("batch", 0), ("default", 50)):
            what = f"fairness: A {plan.fairness_jobs} {a_priority}, B {b_jobs} default"
            tag = f"f{a_priority}{b_jobs}"
            run = fairness(
                stack, ways, a, b, fair, plan.fairness_jobs, plan.fairness_limit, tag,
                a_priority=a_priority, b_jobs=b_jobs,
            )  # fmt: skip
            out["fairness"].append(await _measured(stack, progress, what, run))
    if "priority" in only:
        out["priority"] = []
        for i in range(plan.repeat):
            what = f"priority: {plan.priority_backlog} default waiting, then 50 interactive"
            run = priority(stack, ways, a, b, fair, plan.priority_backlog, plan.fairness_limit, f"p{i}")
            out["priority"].append(await _measured(stack, progress, what, run))
    if "idempotency" in only:
        what = f"idempotency: {plan.idempotency_callers} creates with one key at once"
        run = idempotency(stack, ways, idem, plan.idempotency_callers, max(3, plan.repeat), "i")
        out["idempotency"] = await _measured(stack, progress, what, run)
    if "lost-message" in only:
        what = "lost message: the job admitted, its message never sent"
        run = lost_message(stack, lost_engine, lost_job, lost_since, LOST_MESSAGE_AFTER)
        out["lost_message"] = await _measured(stack, progress, what, run)
    if "lease" in only:  # last: it replaces the workers
        shape = Shape(plan.lease_tokens, plan.lease_tps)
        what = f"lease: a worker SIGKILLed holding {plan.lease_limit} slots"
        run = lease(stack, a, shape, plan.lease_limit, plan.lease_jobs, "l")
        out["lease"] = await _measured(stack, progress, what, run)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="only these scenarios")
    parser.add_argument("--quick", action="store_true", help="smaller numbers, one repeat (a smoke run)")
    parser.add_argument("--fairness-jobs", type=int, metavar="N", help="owner A's backlog (default 1,000)")
    parser.add_argument("--repeat", type=int, help="repeats of the cheap scenarios (default 2)")
    parser.add_argument(
        "--wait-quiet", type=float, default=0, metavar="S", help="wait up to S s for an idle machine first"
    )
    parser.add_argument(
        "--what-if",
        choices=["release-early"],
        help="run the workers changed by bench/sched_shim.py: release-early gives a job's slot back when its "
        "upstream call ends, before the commit (writes run/bench-scheduler/ only)",
    )
    parser.add_argument(
        "--no-trace",
        action="store_true",
        help="plain workers, not bench/sched_shim.py (no handoff breakdown)",
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else Plan()
    if args.fairness_jobs:
        plan = replace(plan, fairness_jobs=args.fairness_jobs, fairness_note=f"N = {args.fairness_jobs}.")
    if args.repeat:
        plan = replace(plan, repeat=args.repeat)
    only = set(args.only or SCENARIOS)
    whole = only == set(SCENARIOS) and plan == Plan() and not args.what_if
    quiet = asyncio.run(wait_until_quiet(0.3, args.wait_quiet)) if args.wait_quiet else None
    started = time.monotonic()
    machine = procstat.describe_machine()
    machine["cores_busy_before_start"] = None if quiet is None else round(quiet, 2)
    machine["code"] = procstat.describe_code(ROOT)
    results: dict[str, Any] = {
        "command": "python -m bench.scheduler " + shlex.join(sys.argv[1:]),
        "what_if": args.what_if,
        "plan": asdict(plan),
        "machine": machine,
        "ways": {"priority": "not probed", "idempotency_key": "not probed"},
    }
    steps = (2 * plan.repeat if "capacity" in only else 0) + 3 * ("fairness" in only)
    steps += plan.repeat * ("priority" in only) + ("idempotency" in only) + ("lease" in only)
    steps += "lost-message" in only
    progress = Progress(steps + 1)
    if only - {"before-after"}:
        what_if = {"SPOOL_BENCH_RELEASE_AT_UPSTREAM_END": "1"} if args.what_if == "release-early" else {}
        stack = SchedStack(
            RUN_DIR / "stack",
            worker_concurrency=plan.worker_concurrency,
            trace=not args.no_trace or bool(what_if),  # the shim is what changes the workers
            settings=what_if,
        )
        log(
            f"starting the fake upstream, one web process and {plan.workers} workers; logs in {stack.run_dir}"
        )
        stack.prepare()
        try:
            stack.start(plan.workers)
            results.update(asyncio.run(_scenarios(stack, plan, only, progress)))
        finally:
            stack.stop_all()
    if "before-after" in only:
        progress.start(f"no limits: {BEFORE_AFTER_WHAT}")
        results["before_after"] = before_after(
            RUN_DIR / "before-after", plan.before_after_generations, plan.before_after_turns
        )
        progress.done()
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    results["finished_at"] = time.strftime("%Y-%m-%d %H:%M %Z")
    out = ROOT / "docs" if whole else RUN_DIR
    out.mkdir(parents=True, exist_ok=True)
    (out / "scheduler-bench.json").write_text(json.dumps(results, indent=1) + "\n")
    doc = out / "PERFORMANCE.md"
    if not doc.exists():
        doc.write_text("# Scheduler benchmark (partial run)\n")
    sched_report.write(results, doc)
    log(f"done in {results['elapsed_s']:.0f} s: {doc}, {out / 'scheduler-bench.json'}")


if __name__ == "__main__":
    main()
