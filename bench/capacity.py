"""Worker capacity: paced generations nobody reads, the worker's own pace against the upstream's."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench import procstat
from bench.clients import Gen, Target, direct, fan_out, start_semoss_job
from bench.processes import Stack
from bench.progress import Progress
from bench.stats import AppendLog, ms, pct
from bench.wire import Connection


def _rate(values: list[float], q: float) -> float | None:
    v = pct(values, q)
    return None if v is None else round(v, 1)


async def direct_pace(target: Target, n: int) -> dict[str, float | None]:
    """The upstream's own per-stream pace with n streams read directly (one generation each)."""

    async def one() -> Gen:
        conn, gen = Connection(target.upstream_port), Gen("direct", time.monotonic())
        try:
            await direct(conn, target, gen)
        finally:
            conn.close()
        return gen

    gens = await asyncio.gather(*(one() for _ in range(n)))
    rates = [(len(g.times) - 1) / (g.times[-1] - g.times[0]) for g in gens if len(g.times) > 1]
    return {"p50": _rate(rates, 50), "p10": _rate(rates, 10), "errors": sum(1 for g in gens if g.error)}


async def worker_pace(
    stack: Stack, target: Target, log: AppendLog, n: int, tokens: int, tps: float
) -> dict[str, Any]:
    log.read_new()
    shim0, worker = log.shim_cpu, stack.pid("worker")
    cpu0, t0 = procstat.cpu_seconds(worker), time.monotonic()
    created: dict[str, float] = {}

    async def make(conn: Connection, i: int) -> None:
        created[await start_semoss_job(conn, target)] = time.monotonic()

    await fan_out(n, target.web_port, make)
    created_in = time.monotonic() - t0
    deadline = time.monotonic() + tokens / tps * 10 + 120
    ended: dict[str, int] = {}
    while len(ended) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        for job, append in log.read_new():
            if append.end and job in created:
                ended[job] = append.end
    cpu1, t1 = procstat.cpu_seconds(worker), time.monotonic()
    await asyncio.sleep(1.0)
    log.read_new()
    worker_cpu = cpu1 - cpu0 - (log.shim_cpu - shim0)
    rates, starts, chunks = [], [], 0
    for job, at in created.items():
        content = [a for a in log.by_job.get(job, []) if a.first < tokens]
        if not content:
            continue
        starts.append(content[0].before - at)
        chunks += sum(min(a.count, tokens - a.first) for a in content)
        if content[-1].before > content[0].before:
            rates.append((tokens - 1) / (content[-1].before - content[0].before))
    return {
        "generations": n,
        "created_in_s": round(created_in, 1),
        "finished": len(ended),
        "errors": sum(1 for e in ended.values() if e == 2) + n - len(ended),
        "worker_rate_tok_s": {"p50": _rate(rates, 50), "p10": _rate(rates, 10)},
        "start_delay_ms": ms(starts, 50, 99),
        "worker_cpu_cores": round(worker_cpu / (t1 - t0), 2),
        "worker_cpu_us_per_chunk": round(worker_cpu / chunks * 1e6, 1) if chunks else None,
        "worker_cpu_ms_per_job": round(worker_cpu / len(ended) * 1e3, 2) if ended else None,
        "machine_cpu_cores": None,
    }


def kept_up(row: dict[str, Any], upstream: dict[str, Any], tps: float) -> bool:
    """The slowest tenth of generations through the worker went at >= 95% of the pace the slowest
    tenth of streams read straight from the upstream got at the same concurrency, with no error.
    That reference is capped at the nominal pace: the stand-in sends on a fixed schedule, so a
    direct stream whose first token the client read late (hundreds of streams starting at once)
    reads its later tokens on time and measures above the pace, which no stream can sustain."""
    ours, theirs = row["worker_rate_tok_s"]["p10"], upstream["p10"]
    if theirs:
        theirs = min(theirs, tps)
    return bool(ours and theirs and ours >= 0.95 * theirs and row["errors"] == 0)


async def capacity(
    stack: Stack,
    target: Target,
    log: AppendLog,
    ns: tuple[int, ...],
    tokens: int,
    tps: float,
    progress: Progress,
) -> list[dict[str, Any]]:
    rows = []
    for n in ns:
        progress.start(f"worker capacity: {n} generations of {tokens} tokens at {tps:g} tok/s")
        upstream = await direct_pace(target, n)
        busy0 = procstat.machine_busy_seconds()
        t0 = time.monotonic()
        row = await worker_pace(stack, target, log, n, tokens, tps)
        row["machine_cpu_cores"] = round(
            (procstat.machine_busy_seconds() - busy0) / (time.monotonic() - t0), 2
        )
        row["upstream_direct_rate_tok_s"] = upstream
        row["kept_up"] = kept_up(row, upstream, tps)
        row["tokens_per_generation"], row["pace_tok_s"] = tokens, tps
        rows.append(row)
        progress.done(
            row["finished"], "generations finished", errors=row["errors"], detail=f"kept up: {row['kept_up']}"
        )
        if not row["kept_up"]:
            break  # more would only fall further behind, and take long to drain
    return rows
