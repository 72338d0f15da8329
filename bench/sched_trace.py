"""Where a slot's time goes between one job's end and the next's start, from the workers'
traces (bench/sched_shim.py): for each job admitted by another's release, the steps from the
released job's generation end to its own generation start, in ms (p50 and mean)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.stats import pct

# (name, from event of the released job or of the next one, to event): consecutive steps.
STEPS = (
    ("commit and close the log", ("released", "gen_end"), ("released", "finished")),
    ("until the release begins", ("released", "finished"), ("released", "rel_start")),
    ("release script, admit", ("released", "rel_start"), ("next", "publish")),
    ("Celery: publish -> task runs", ("next", "publish"), ("next", "task")),
    ("claim (Postgres)", ("next", "task"), ("next", "claimed")),
    ("take (Redis)", ("next", "claimed"), ("next", "taken")),
    ("load, lease, hand to the loop", ("next", "taken"), ("next", "gen_start")),
)


def read(paths: list[Path]) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """Per job, its events' times (the first of each); and which release admitted each job."""
    events: dict[str, dict[str, float]] = defaultdict(dict)
    admitted_by: dict[str, str] = {}
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            event, job_id, at, *via = line.split()
            events[job_id].setdefault(event, float(at))
            if event == "publish" and via:
                admitted_by[job_id] = via[0]
    return events, admitted_by


def handoffs(paths: list[Path], job_ids: set[str]) -> dict[str, Any]:
    """Of the handoffs between these jobs."""
    events, admitted_by = read(paths)
    steps: dict[str, list[float]] = defaultdict(list)
    totals = []
    for job_id, released in admitted_by.items():
        if job_id not in job_ids or released not in job_ids:
            continue
        jobs = {"next": events.get(job_id, {}), "released": events.get(released, {})}
        times = [jobs[who].get(event) for name, _, (who, event) in STEPS]
        start = jobs["released"].get("gen_end")
        if start is None or any(t is None for t in times):
            continue
        for (name, (w0, e0), (w1, e1)), _ in zip(STEPS, times, strict=True):
            steps[name].append(jobs[w1][e1] - jobs[w0][e0])
        totals.append(jobs["next"]["gen_start"] - start)
    if not totals:
        return {}

    def ms(values: list[float]) -> dict[str, float]:
        return {
            "p50": round((pct(values, 50) or 0) * 1000, 1),
            "mean": round(statistics.mean(values) * 1000, 1),
        }

    return {
        "handoffs": len(totals),
        "generation_end_to_next_generation_start_ms": ms(totals),
        "steps_ms": {name: ms(values) for name, values in steps.items()},
    }
