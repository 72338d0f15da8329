"""How the upstream's slots were used, from the fake upstream's own record of each answered
request (when its answer began and ended): how busy the slots were, and how long a slot stood
idle between one answer's end and the next request, which is Spool's whole cost per job at the
limit (the worker's end of a job, the release, the admission, Celery's hop, the claim, the
upstream call's set-up)."""

from __future__ import annotations

import statistics
from typing import Any

import httpx

from bench.sched_stack import SchedStack
from bench.stats import pct


def forget(stack: SchedStack) -> None:
    """The fake keeps its last 1,000 requests: empty it before a run whose requests are read."""
    httpx.delete(f"{stack.upstream}/_requests", timeout=10).raise_for_status()


def usage(stack: SchedStack, model: str, slots: int) -> dict[str, Any]:
    records = httpx.get(f"{stack.upstream}/_requests", timeout=30).json()
    spans = sorted(
        (r["began_at"], r["ended_at"])
        for r in records
        if r["body"].get("model") == model and r["status"] == "done" and "ended_at" in r
    )
    if len(spans) <= slots:
        return {}
    begins = [b for b, _ in spans]
    ends = sorted(e for _, e in spans)
    # With at most `slots` at once and work always waiting, the k-th request after the first
    # `slots` took the slot the k-th answer to end gave back.
    gaps = [begins[slots + k] - ends[k] for k in range(len(spans) - slots)]
    busy = sum(e - b for b, e in spans)
    return {
        "requests": len(spans),
        "answer_s_mean": round(busy / len(spans), 4),
        "slots_busy": round(busy / (slots * (ends[-1] - begins[0])), 3),
        "slot_idle_between_jobs_ms": {
            "mean": round(statistics.mean(gaps) * 1000, 1),
            "p50": round((pct(gaps, 50) or 0) * 1000, 1),
            "p99": round((pct(gaps, 99) or 0) * 1000, 1),
        },
    }
