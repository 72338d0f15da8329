"""The benchmark in one command: `python -m bench.pipeline [--quick]` (see docs/PERFORMANCE.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench import procstat, report
from bench.accounting import other_sessions
from bench.capacity import capacity
from bench.cells import Spec, idle_baseline, run_cell
from bench.clients import FACES, Gen, Target, port_for
from bench.idle import long_pollers, partial_pollers, sse_clients
from bench.processes import DB_NAME, ROOT, Stack
from bench.profile import profiled_cell
from bench.progress import Progress
from bench.stats import AppendLog
from bench.wire import Connection


@dataclass(frozen=True)
class Plan:
    name: str
    concurrencies: tuple[int, ...]
    full_tokens: int  # tokens per generation with the upstream at full speed
    paced_tokens: int  # ... at `pace` tokens/s
    pace: float
    duration: float  # seconds each cell starts new generations for
    idle_waiters: int
    idle_hold: float  # > 10 s: the SSE face answers its head after one keep-alive period
    capacity_ns: tuple[int, ...]
    capacity_tokens: int
    worker_concurrency: int  # threads of the one worker process: >= every concurrency above


QUICK = Plan("quick", (1, 10), 50, 20, 100.0, 3.0, 50, 12.0, (10, 20), 100, 64)
FULL = Plan("full", (1, 10, 100, 500), 200, 100, 100.0, 12.0, 1000, 25.0, (50, 100, 200, 300, 500), 500, 520)
FACE_ORDER = ("direct", "sse", "semoss")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


async def wait_until_quiet(limit: float, patience: float, window: float = 2.0) -> float:
    """Wait (up to `patience` seconds) for the machine's CPU use to fall under `limit` cores: other
    programs' load lands in every latency. Returns the last reading."""
    deadline = time.monotonic() + patience
    said = False
    while True:
        busy = procstat.machine_busy_seconds()
        await asyncio.sleep(window)
        cores = (procstat.machine_busy_seconds() - busy) / window
        if cores < limit or time.monotonic() > deadline:
            return cores
        if not said:
            log(f"the machine is busy ({cores:.2f} cores in use); waiting up to {patience:.0f} s for quiet")
            said = True


async def warm_up(targets: list[Target]) -> None:
    """One generation per face and engine: the worker is ready and engines are built and cached."""
    for target in targets:
        for face in FACE_ORDER:
            conn, gen = Connection(port_for(face, target)), Gen(face, time.monotonic())
            try:
                await asyncio.wait_for(FACES[face](conn, target, gen), 120)
            finally:
                conn.close()
            if gen.error:
                raise RuntimeError(f"warm-up {face} on {target.engine} failed: {gen.error}")


def added_ttft(cells: list[dict[str, Any]]) -> None:
    """Spool's TTFT minus the upstream's own at the same concurrency and pace."""
    direct = {(c["pace"], c["concurrency"]): c["ttft_ms"] for c in cells if c["face"] == "direct"}
    for cell in cells:
        base = direct.get((cell["pace"], cell["concurrency"]))
        if cell["face"] != "direct" and base:
            cell["added_ttft_ms"] = {
                q: None
                if cell["ttft_ms"][q] is None or base[q] is None
                else round(cell["ttft_ms"][q] - base[q], 2)
                for q in ("p50", "p99")
            }


async def run(stack: Stack, plan: Plan, profile: bool, wait_quiet: float) -> dict[str, Any]:
    def target(engine: str, tokens: int, tps: float) -> Target:
        model = f"fake?tokens={tokens}" + (f"&tps={tps:g}" if tps else "")
        return Target(stack.web_port, stack.upstream_port, stack.access_key, stack.secret_key, engine, model)

    paces = [(plan.full_tokens, 0.0), (plan.paced_tokens, plan.pace)]
    targets = {tps: target(stack.engine(tokens, tps), tokens, tps) for tokens, tps in paces}
    cap = target(stack.engine(plan.capacity_tokens, plan.pace), plan.capacity_tokens, plan.pace)
    log_ = AppendLog(stack.append_log)
    cell_count = len(paces) * len(plan.concurrencies) * len(FACE_ORDER)
    profiled_cells = 3 if profile else 0
    progress = Progress(2 + cell_count + profiled_cells + len(plan.capacity_ns) + 2)
    progress.start("warming up: one generation per face and engine")
    await warm_up([*targets.values(), cap])
    progress.done(len(FACE_ORDER) * (len(targets) + 1), "generations")
    await asyncio.sleep(2.0)
    progress.start("idle CPU, 5 s")
    baseline = await idle_baseline(stack, 5.0)
    progress.done(detail=f"cores: {baseline}")
    if baseline["rest_of_machine"] > 0.2:
        log("WARNING: something else is using the CPU; the figures will be noisy (see rest_of_machine)")
    cells = []
    for tokens, tps in paces:
        for c in plan.concurrencies:
            for face in FACE_ORDER:
                spec = Spec(face, c, tokens, tps, plan.duration)
                busy = await wait_until_quiet(0.3, min(wait_quiet, 120))
                progress.start(f"cell {face} c={c} {spec.pace}, {plan.duration:g} s")
                cell = await run_cell(stack, targets[tps], spec, log_)
                cell["machine_cores_busy_before"] = round(busy, 2)
                progress.done(
                    cell["generations"],
                    "generations",
                    errors=cell["errors"],
                    detail=f"ttft {cell['ttft_ms']}, {cell['throughput_chunks_s']} chunks/s, "
                    f"delivery {cell.get('delivery_ms')}",
                )
                cells.append(cell)
                await asyncio.sleep(1.0)
    added_ttft(cells)
    profiles = {}
    if profile:
        c = min(100, max(plan.concurrencies))
        for face, tps in (("sse", 0.0), ("semoss", 0.0), ("sse", plan.pace)):
            tokens = plan.paced_tokens if tps else plan.full_tokens
            spec = Spec(face, c, tokens, tps, plan.duration)
            progress.start(f"profiling {face} c={c} {spec.pace}")
            profiles[f"{face}, c={c}, {spec.pace}"] = profiled = await profiled_cell(
                stack, targets[tps], spec, stack.run_dir, log_
            )
            sampled = profiled.get("cell", {})  # none when py-spy is missing: the error says so
            progress.done(
                sampled.get("generations", 0),
                "generations",
                errors=sampled.get("errors", 0),
                detail=profiled.get("error", ""),
            )
    cap_rows = await capacity(stack, cap, log_, plan.capacity_ns, plan.capacity_tokens, plan.pace, progress)
    stack.stop("worker")  # so every job the idle waiters wait on stays queued
    idle = []
    for kind, waiters in (("long-polls", long_pollers), ("SSE streams", sse_clients)):
        progress.start(f"{plan.idle_waiters} idle {kind} for {plan.idle_hold:g} s (worker stopped)")
        held = await waiters(stack, targets[plan.pace], plan.idle_waiters, plan.idle_hold)
        progress.done(held["requests"], "requests", errors=held["errors"])
        idle.append(held)
    return {
        "idle_cpu_cores": baseline,
        "cells": cells,
        "capacity": cap_rows,
        "idle": idle,
        "profiles": profiles,
    }


IDLE_KINDS = {"long-polls": long_pollers, "SSE streams": sse_clients, "partial long-polls": partial_pollers}
# What --only runs. The partial long-polls (the ai-server-sdk's stream_ask, waiting) are not in
# the full plan: they are the pixelJobStreaming long-polls' path with a text claim.
ONLY = {
    "idle": ["long-polls", "SSE streams"],
    "long-polls": ["long-polls"],
    "partial-polls": ["partial long-polls"],
}


async def run_idle(stack: Stack, plan: Plan, kinds: list[str], profile: bool) -> dict[str, Any]:
    """Only the idle waiters (`--only`), the worker never started; with `profile`, py-spy on the
    web process while they wait."""
    engine = stack.engine(plan.paced_tokens, plan.pace)
    model = f"fake?tokens={plan.paced_tokens}&tps={plan.pace:g}"
    target = Target(stack.web_port, stack.upstream_port, stack.access_key, stack.secret_key, engine, model)
    idle = []
    for kind in kinds:
        spied = stack.run_dir / f"profile-idle-{kind.replace(' ', '-')}-web.txt" if profile else None
        log(f"{plan.idle_waiters} idle {kind} for {plan.idle_hold:g} s (no worker)")
        held = await IDLE_KINDS[kind](stack, target, plan.idle_waiters, plan.idle_hold, spied)
        log(
            f"{held['requests']} requests, {held['errors']} errors, answered in {held['answer_s']} s, "
            f"{held['web_cpu_cores']} web cores, {held['web_cpu_us_per_request']} µs web CPU per request, "
            f"clients {held['client_cpu_cores']} cores, "
            f"web waited for a CPU {held['web_run_queue_share']} of the time"
        )
        idle.append(held)
    return {"idle": idle}


def idle_only(plan: Plan, kinds: list[str], profile: bool) -> None:
    stack = Stack(
        run_dir=ROOT / "run" / "bench", worker_concurrency=plan.worker_concurrency, requests_per_minute=10**9
    )
    stack.prepare()
    try:
        stack.start_upstream()
        stack.start_web()
        results = asyncio.run(run_idle(stack, plan, kinds, profile))
    finally:
        stack.stop_all()
    results.update(plan=asdict(plan), machine=procstat.describe_machine())
    out = stack.run_dir / "idle.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    log(f"figures in {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small run for smoke-testing (about a minute)")
    parser.add_argument("--profile", action="store_true", help="also run py-spy on web and worker at c=100")
    parser.add_argument(
        "--out", type=Path, help="where the JSON and markdown go (default: docs/, run/bench/ with --quick)"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="S",
        help="wait up to S s for an idle machine first, and up to 120 s before each cell",
    )
    parser.add_argument("--concurrency", type=int, nargs="+", metavar="N", help="only these concurrencies")
    parser.add_argument("--capacity", type=int, nargs="+", metavar="N", help="only these capacity steps")
    parser.add_argument(
        "--only",
        choices=tuple(ONLY),
        help="only the idle waiters (both kinds, the long-polls, or the SDK's partial long-polls), "
        "with no worker; figures in run/bench/idle.json (with --profile, py-spy on the web process)",
    )
    parser.add_argument("--waiters", type=int, metavar="N", help="this many idle waiters")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if args.concurrency:
        plan = replace(plan, concurrencies=tuple(args.concurrency))
    if args.capacity:
        plan = replace(plan, capacity_ns=tuple(args.capacity))
    if args.waiters:
        plan = replace(plan, idle_waiters=args.waiters)
    if args.only:
        idle_only(plan, ONLY[args.only], args.profile)
        return
    # A partial run never overwrites the full figures in docs/.
    if plan not in (QUICK, FULL):
        plan = replace(plan, name=f"{plan.name} (part)")
    partial = plan != FULL
    out = args.out or (ROOT / "run" / "bench" if partial else ROOT / "docs")
    stack = Stack(run_dir=ROOT / "run" / "bench", worker_concurrency=plan.worker_concurrency)
    started, machine = time.monotonic(), procstat.describe_machine()
    machine["code"] = procstat.describe_code(ROOT)
    log(f"{plan.name} benchmark; logs in {stack.run_dir}")
    machine["cores_busy_before_start"] = round(asyncio.run(wait_until_quiet(0.3, args.wait_quiet)), 2)
    stack.prepare()
    machine["other_sessions_on_bench_db"] = others = other_sessions()
    if others:
        log(f"WARNING: {others} other sessions use {DB_NAME}; Postgres write counts will include theirs")
    try:
        stack.start_upstream()
        stack.start_web()
        stack.start_worker()
        results = asyncio.run(run(stack, plan, args.profile, args.wait_quiet))
    finally:
        stack.stop_all()
    results.update(plan=asdict(plan), machine=machine, elapsed_s=round(time.monotonic() - started, 1))
    report.write(results, out)
    log(f"done in {results['elapsed_s']:.0f} s: {out / 'PERFORMANCE.md'}, {out / 'performance.json'}")


if __name__ == "__main__":
    main()
