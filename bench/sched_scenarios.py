"""The scheduler's load scenarios, each on an engine of its own on the fake upstream, each
bounded in time: capacity (a limited engine against an upstream that answers 429 above the same
limit), fairness (one owner's backlog, another's jobs arriving), priority (interactive jobs
behind a default backlog)."""

from __future__ import annotations

import asyncio
import bisect
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench import sched_inproc as inproc
from bench import sched_slots, sched_trace
from bench.sched_jobs import TERMINAL, Row, create_many, create_spread, rows, wait_all_ended
from bench.sched_stack import Key, SchedStack
from bench.sched_ways import Ways, with_priority
from bench.stats import pct


@dataclass(frozen=True, slots=True)
class Shape:
    """A generation on the fake upstream: `tokens` words at `tps` a second on a fixed schedule,
    so it lasts tokens/tps seconds whatever else the machine does."""

    tokens: int
    tps: float
    vary: float = 0.0  # each generation's length drawn from tokens × (1 ± vary); its mean is tokens

    @property
    def seconds(self) -> float:
        return self.tokens / self.tps

    def model(self, tag: str, upstream_limit: int | None) -> str:
        # `run` only makes the model string, hence the upstream's counters, the run's own.
        limit = f"&max_concurrency={upstream_limit}" if upstream_limit else ""
        vary = f"&vary={self.vary:g}" if self.vary else ""
        return f"fake?tokens={self.tokens}&tps={self.tps:g}{vary}{limit}&run={tag}"


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _outcome(found: list[Row], expected: int) -> dict[str, Any]:
    reasons = Counter(
        r.finish_reason or r.status for r in found if r.status != "succeeded"
    )  # failed, cancelled, and what never ended
    return {
        "jobs": expected,
        "succeeded": sum(1 for r in found if r.status == "succeeded"),
        "failed": expected - sum(1 for r in found if r.status == "succeeded"),
        "failures_by_reason": dict(reasons),
    }


def _pace(found: list[Row], shape: Shape, slots: int) -> dict[str, Any]:
    """Throughput of the succeeded jobs (first start to last end) against `slots` generations
    at once at the upstream's pace; and where a slot's time went, per job."""
    done = [r for r in found if r.status == "succeeded" and r.started and r.finished]
    if not done:
        return {}
    span = max(r.finished for r in done if r.finished) - min(r.started for r in done if r.started)
    tokens_s = len(done) * shape.tokens / span
    cycle = slots * span / len(done)  # a slot's time per job, if every slot was busy throughout
    run = statistics.mean(r.run_time for r in done if r.run_time is not None)
    to_first = [r.first_chunk - r.started for r in done if r.first_chunk and r.started]
    after_first = [r.finished - r.first_chunk for r in done if r.first_chunk and r.finished]
    return {
        "span_s": _r(span, 2),
        "jobs_per_s": _r(len(done) / span, 2),
        "throughput_vs_slots_at_pace": _r(tokens_s / (slots * shape.tps), 3),
        "slot_seconds_per_job": _r(cycle),
        "generation_s_nominal": _r(shape.seconds),
        "run_s_mean": _r(run),  # claimed -> ended: the upstream's stream, and the worker's own ends
        "handoff_s_mean": _r(cycle - run),  # a slot's time between one job's end and the next's claim
        # Against the upstream's own 1/tps to the first token and (tokens - 1)/tps after it.
        "claim_to_first_chunk_s_mean": _r(statistics.mean(to_first)) if to_first else None,
        "first_chunk_to_end_s_mean": _r(statistics.mean(after_first)) if after_first else None,
    }


def _waits(found: list[Row], unit: float, everyone: list[Row]) -> dict[str, Any]:
    """Queue waits of `found`, in seconds and in `unit`s; and each split at the first slot that
    freed after the job was created (the first end of any job of the engine after it): waiting
    for a slot, then from that slot to the claim. A job that took the first free slot shows the
    handoff as its second part; one passed over, more."""
    waits = [r.queue_wait for r in found if r.queue_wait is not None]
    p50, p99 = pct(waits, 50), pct(waits, 99)
    ends = sorted(r.finished for r in everyone if r.finished)
    to_slot, after_slot = [], []
    for r in found:
        if r.started is None:
            continue
        freed = (
            ends[bisect.bisect_left(ends, r.created)]
            if bisect.bisect_left(ends, r.created) < len(ends)
            else None
        )
        if freed is not None and freed <= r.started:
            to_slot.append(freed - r.created)
            after_slot.append(r.started - freed)
        else:  # a slot was free when it came
            to_slot.append(0.0)
            after_slot.append(r.started - r.created)
    return {
        "n": len(waits),
        "queue_wait_s": {"p50": _r(p50), "p99": _r(p99), "max": _r(max(waits, default=None))},
        "in_units": {"p50": _r(p50 / unit if p50 is not None else None, 2),
                     "p99": _r(p99 / unit if p99 is not None else None, 2)},
        "until_a_slot_freed_s": {"p50": _r(pct(to_slot, 50)), "p99": _r(pct(to_slot, 99))},
        "from_that_slot_to_claim_s": {"p50": _r(pct(after_slot, 50)), "p99": _r(pct(after_slot, 99))},
    }  # fmt: skip


def _upstream(stack: SchedStack, model: str) -> dict[str, Any]:
    stats = stack.upstream_stats()["models"].get(model, {})
    return {"max_in_flight": stats.get("max_in_flight"), "rejected_429": stats.get("rejected_429")}


async def _ended(stack: SchedStack, engine: str, expected: int, timeout: float) -> list[Row]:
    """Every job of the engine once `expected` ended; past `timeout`, what is left is cancelled
    (and counted as not succeeded), so the next scenario starts on a quiet stack."""
    found = await wait_all_ended(stack, engine, expected, timeout)
    if sum(1 for r in found if r.status in ("succeeded", "failed", "cancelled")) < expected:
        await asyncio.to_thread(inproc.cancel_unfinished, engine)
    return found


async def capacity(
    stack: SchedStack, key: Key, shape: Shape, jobs: int, limit: int, engine_limited: bool, tag: str
) -> dict[str, Any]:
    """`jobs` created over HTTP at once on an engine limited to `limit` (or not limited), the
    upstream answering 429 above `limit`."""
    model = shape.model(tag, limit)
    engine = await asyncio.to_thread(
        inproc.engine, stack, f"capacity-{tag}", model, limit if engine_limited else None
    )
    await asyncio.to_thread(sched_slots.forget, stack)
    t0 = time.monotonic()
    created = await create_many(stack.web_port, key, engine, jobs)
    created_s = time.monotonic() - t0
    found = await _ended(stack, engine, jobs, timeout=jobs * shape.seconds / limit * 4 + 120)
    slots = await asyncio.to_thread(sched_slots.usage, stack, model, limit) if engine_limited else {}
    traced = {}
    if stack.trace and engine_limited:
        await asyncio.sleep(1.0)  # the shim writes its file every half second
        traced = sched_trace.handoffs(stack.trace_files(), {r.job_id for r in found})
    return {
        "engine_max_concurrency": limit if engine_limited else None,
        "upstream_limit": limit,
        "created_in_s": round(created_s, 2),
        "create_errors": sum(1 for c in created if not c.job_id),
        **_outcome(found, jobs),
        "upstream": _upstream(stack, model),
        **_pace(found, shape, limit),
        "upstream_slots": slots,
        "handoff_trace": traced,
        "elapsed_s": round(time.monotonic() - t0, 1),
    }


async def fairness(
    stack: SchedStack,
    ways: Ways,
    a: Key,
    b: Key,
    shape: Shape,
    a_jobs: int,
    limit: int,
    tag: str,
    a_priority: str = "batch",
    b_jobs: int = 50,
    b_over: float = 10.0,
) -> dict[str, Any]:
    """Owner A's backlog of `a_jobs` (class a_priority), then owner B's b_jobs default jobs, one
    every b_over/b_jobs seconds over HTTP (none when b_jobs is 0: A alone)."""
    model = shape.model(tag, limit)
    engine = await asyncio.to_thread(inproc.engine, stack, f"fairness-{tag}", model, limit)
    t0 = time.monotonic()
    if a_priority == "default":  # what the native face asks for by itself
        created_a = await create_many(stack.web_port, a, engine, a_jobs)
    else:
        created_a = await with_priority(stack, ways, a, engine, a_jobs, a_priority)
    created_a_s = time.monotonic() - t0
    created_b = await create_spread(stack.web_port, b, engine, b_jobs, b_over) if b_jobs else []
    expected = a_jobs + b_jobs
    found = await _ended(stack, engine, expected, timeout=expected * shape.seconds / limit * 4 + 120)
    rows_a = [r for r in found if r.owner == a.owner]
    rows_b = [r for r in found if r.owner == b.owner]
    done_a = [r for r in rows_a if r.status == "succeeded" and r.started and r.finished]
    span_a = (
        max(r.finished for r in done_a if r.finished) - min(r.started for r in done_a if r.started)
        if done_a
        else None
    )
    return {
        "a_jobs": a_jobs,
        "a_priority": a_priority,
        "a_created_in_s": round(created_a_s, 2),
        "b_jobs": b_jobs,
        "create_errors": sum(1 for c in [*created_a, *created_b] if not c.job_id),
        **_outcome(found, expected),
        "b": _waits(rows_b, shape.seconds, found) if rows_b else None,
        "a_jobs_per_s": _r(len(done_a) / span_a, 2) if span_a else None,
        "engine": _pace(found, shape, limit),
        "upstream": _upstream(stack, model),
        "elapsed_s": round(time.monotonic() - t0, 1),
    }


async def _owner_ended(stack: SchedStack, engine: str, owner: str, expected: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mine = [r for r in await asyncio.to_thread(rows, stack, engine) if r.owner == owner]
        if sum(1 for r in mine if r.status in TERMINAL) >= expected:
            return
        stack.check_alive()
        await asyncio.sleep(0.5)


async def priority(
    stack: SchedStack,
    ways: Ways,
    a: Key,
    b: Key,
    shape: Shape,
    backlog: int,
    limit: int,
    tag: str,
    interactive: int = 50,
    over: float = 10.0,
) -> dict[str, Any]:
    """`backlog` default jobs of owner A over HTTP, then `interactive` interactive jobs of owner B
    arriving one every over/interactive seconds; once they ended, what is left of the backlog is
    cancelled (its figures are not this scenario's)."""
    model = shape.model(tag, limit)
    engine = await asyncio.to_thread(inproc.engine, stack, f"priority-{tag}", model, limit)
    t0 = time.monotonic()
    created = await create_many(stack.web_port, a, engine, backlog)
    created_s = time.monotonic() - t0
    waiting_then = (await asyncio.to_thread(inproc.running, engine))[1]["default"]
    urgent = await with_priority(stack, ways, b, engine, interactive, "interactive", over=over)
    await _owner_ended(stack, engine, b.owner, interactive, timeout=interactive * shape.seconds * 4 + 120)
    cancelled = await asyncio.to_thread(inproc.cancel_unfinished, engine)
    found = await wait_all_ended(stack, engine, backlog + interactive, timeout=120)
    turnover = shape.seconds / limit  # a slot frees this often, on average, when all are busy
    rows_i = [r for r in found if r.owner == b.owner]
    waits = _waits(rows_i, shape.seconds, found)
    waits["in_slot_turnovers"] = {
        q: _r(v / turnover, 2) if v is not None else None
        for q, v in waits["queue_wait_s"].items()
        if q in ("p50", "p99")
    }
    return {
        "backlog": backlog,
        "backlog_created_in_s": round(created_s, 2),
        "default_waiting_when_interactive_began": waiting_then,
        "interactive": interactive,
        "create_errors": sum(1 for c in [*created, *urgent] if not c.job_id),
        "interactive_failed": interactive - sum(1 for r in rows_i if r.status == "succeeded"),
        "backlog_cancelled_after": cancelled,
        "interactive_waits": waits,
        "interactive_classes": dict(Counter(r.priority for r in rows_i)),
        "slot_turnover_s": _r(turnover),
        "upstream": _upstream(stack, model),
        "elapsed_s": round(time.monotonic() - t0, 1),
    }
