"""One cell of the matrix: a face at a concurrency and pace, run closed-loop, CPU read around it."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any

from bench import procstat
from bench.accounting import Snapshot, cpu_delta, snapshot
from bench.breakdown import ttft_breakdown
from bench.clients import FACES, Gen, Target, port_for
from bench.processes import Stack
from bench.stats import AppendLog, delivery_latencies, ms, pct
from bench.wire import Connection

# What a generation may die of on the client side; anything else is a bench bug and should raise.
CLIENT_ERRORS = (
    OSError,
    asyncio.IncompleteReadError,
    asyncio.LimitOverrunError,
    TimeoutError,
    ValueError,
    KeyError,
)


@dataclass(frozen=True, slots=True)
class Spec:
    face: str  # direct, sse, semoss
    concurrency: int
    tokens: int
    tps: float  # 0: the upstream at full speed
    duration: float  # seconds during which new generations start

    @property
    def pace(self) -> str:
        return "full" if not self.tps else f"{self.tps:g} tok/s"


async def _lag_probe(stop: asyncio.Event, lags: list[float]) -> None:
    """How late the client's own event loop runs a 10 ms timer: its share of every latency."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(0.01)
        lags.append(loop.time() - start - 0.01)


async def closed_loop(
    spec: Spec, target: Target, timeout: float
) -> tuple[list[Gen], float, float, list[float]]:
    """`concurrency` users each run generations back to back until `duration` has passed; users
    start spread over the first second so the first wave is not one thundering herd."""
    run = FACES[spec.face]
    gens: list[Gen] = []
    lags: list[float] = []
    stop = asyncio.Event()
    probe = asyncio.create_task(_lag_probe(stop, lags))
    t0 = time.monotonic()
    stop_at = t0 + spec.duration
    stagger = min(1.0, spec.duration / 4)

    async def user(i: int) -> None:
        await asyncio.sleep(stagger * i / spec.concurrency)
        conn = Connection(port_for(spec.face, target))
        try:
            while time.monotonic() < stop_at:
                gen = Gen(spec.face, time.monotonic())
                gens.append(gen)
                try:
                    await asyncio.wait_for(run(conn, target, gen), timeout)
                except CLIENT_ERRORS as exc:
                    gen.error = f"{type(exc).__name__}: {exc}"[:200]
                if gen.error:
                    conn.close()  # a half-read response would poison the next request
        finally:
            conn.close()

    await asyncio.gather(*(user(i) for i in range(spec.concurrency)))
    stop.set()
    await probe
    return gens, t0, stop_at, lags


def _per_chunk(seconds: float, chunks: int) -> float | None:
    return round(seconds / chunks * 1e6, 1) if chunks else None


def _rates(gens: list[Gen]) -> list[float]:
    """Each generation's token rate as its client saw it, first to last chunk."""
    return [
        (len(g.times) - 1) / (g.times[-1] - g.times[0])
        for g in gens
        if g.error is None and len(g.times) > 1 and g.times[-1] > g.times[0]
    ]


def summarize(spec: Spec, gens: list[Gen], window: tuple[float, float], lags: list[float],
              wall: float, cpu: dict[str, float], log: AppendLog) -> dict[str, Any]:  # fmt: skip
    t0, stop_at = window
    errors = [g.error for g in gens if g.error]
    chunks = sum(len(g.seqs) for g in gens)
    # Over the whole cell, drain included: an overloaded cell may deliver nothing before stop_at.
    last = max((g.times[-1] for g in gens if g.times), default=stop_at)
    rates = _rates(gens)
    out: dict[str, Any] = {
        "face": spec.face,
        "concurrency": spec.concurrency,
        "pace": spec.pace,
        "tokens_per_generation": spec.tokens,
        "duration_s": round(wall, 2),
        "generations": len(gens),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:3],
        "ttft_ms": ms([g.t_first - g.t_send for g in gens if g.t_first is not None], 50, 99),
        "throughput_chunks_s": round(chunks / max(last - t0, 1e-9), 1),
        "chunks_delivered": chunks,
        "stream_rate_tok_s": {
            q: None if (v := pct(rates, n)) is None else round(v, 1) for q, n in (("p50", 50), ("p10", 10))
        },
        # Web and worker sit idle while the client calls the upstream directly.
        "cpu_us_per_chunk": {
            name: None if spec.face == "direct" and name in ("web", "worker") else _per_chunk(s, chunks)
            for name, s in cpu.items()
        },
        "cpu_cores_busy": {name: round(s / wall, 2) for name, s in cpu.items()},
        "client_loop_lag_ms": ms(lags, 50, 99),
    }
    if spec.face != "direct":
        latencies, unmatched = delivery_latencies(gens, log)
        appends = [a for g in gens for a in log.by_job.get(g.job_id, [])]
        out["delivery_ms"] = ms(latencies, 50, 99)
        out["delivery_unmatched_chunks"] = unmatched
        out["worker_append_rtt_ms"] = ms([a.after - a.before for a in appends], 50, 99)
        out["chunks_per_redis_append"] = (
            round(sum(a.count for a in appends) / len(appends), 2) if appends else None
        )
        out["cpu_us_per_chunk"]["web+worker"] = _per_chunk(cpu["web"] + cpu["worker"], chunks)
    return out


def _pids(stack: Stack) -> dict[str, int]:
    return {"web": stack.pid("web"), "worker": stack.pid("worker"), "upstream": stack.pid("upstream"),
            "client": os.getpid()}  # fmt: skip


async def run_cell(stack: Stack, target: Target, spec: Spec, log: AppendLog) -> dict[str, Any]:
    stack.check_alive()
    pids = _pids(stack)
    log.read_new()
    shim0 = log.shim_cpu
    before = snapshot(pids)
    wall_offset = time.time() - time.monotonic()
    timeout = spec.tokens / (spec.tps or 1000) * 20 + 60
    gens, t0, stop_at, lags = await closed_loop(spec, target, timeout)
    after = snapshot(pids)
    await asyncio.sleep(1.2)  # the shim writes every 0.5 s; Postgres counts a session when it ends
    log.read_new()
    late = snapshot(pids)
    cpu = cpu_delta(before, after)
    # The bench's own timing shim is not Spool (ticks are 10 ms, so never below zero).
    cpu["worker"] = max(0.0, cpu["worker"] - (log.shim_cpu - shim0))
    out = summarize(spec, gens, (t0, stop_at), lags, after.at - before.at, cpu, log)
    # Who the rest of the machine was: other programs, or Postgres backends still open at the end.
    ours = {
        *pids.values(),
        *(pid for pid, (name, _) in after.everyone.items() if name.startswith("redis-server")),
    }
    out["rest_of_machine_top_s"] = procstat.top_others(before.everyone, after.everyone, ours)
    if spec.face != "direct":
        n = len(gens) or 1
        out["pg_rows_written_per_generation"] = round((late.pg_rows_written - before.pg_rows_written) / n, 2)
        out["pg_transactions_per_generation"] = round((late.pg_commits - before.pg_commits) / n, 2)
        out["ttft_breakdown_ms"] = ttft_breakdown(gens, wall_offset)
    return out


async def idle_baseline(stack: Stack, seconds: float) -> dict[str, Any]:
    """CPU cores each process burns with no load at all, and the rest of the machine's: a busy
    machine (other test runs) makes every figure noisier."""
    pids = _pids(stack)
    before: Snapshot = snapshot(pids)
    await asyncio.sleep(seconds)
    after = snapshot(pids)
    out: dict[str, Any] = {
        name: round(s / (after.at - before.at), 3) for name, s in cpu_delta(before, after).items()
    }
    out["rest_of_machine_top_s"] = procstat.top_others(before.everyone, after.everyone, set(pids.values()))
    return out
