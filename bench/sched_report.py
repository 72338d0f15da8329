"""bench.scheduler's figures as the generated tables of PERFORMANCE.md's "Scheduler
(bench.scheduler)" section, between its own markers; what is around them is written by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

BEGIN, END = "<!-- SCHED:BEGIN -->", "<!-- SCHED:END -->"
HEADING = "## Scheduler (bench.scheduler)"


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(value: Any) -> str:
        if value is None:
            return "–"
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    return [
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
        *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows),
        "",
    ]


def _counts(counted: dict[str, int]) -> str | None:
    return ", ".join(f"{k} {v}" for k, v in counted.items()) or None


def _split(q: dict[str, float | None] | None) -> str | None:
    return None if not q else f"{q['p50']:g} / {q['p99']:g}"


def _pct(value: float | None) -> str | None:
    return None if value is None else f"{value * 100:.1f}%"


def _capacity(runs: list[dict[str, Any]], plan: dict[str, Any]) -> list[str]:
    out = [
        f"**Capacity.** {plan['capacity_jobs']} jobs of {plan['capacity_tokens']} tokens at "
        f"{plan['capacity_tps']:g} tok/s ({plan['capacity_tokens'] / plan['capacity_tps']:.2f} s each) "
        f"created at once over HTTP (native face), 2 workers; the upstream answers 429 (Retry-After 1) "
        f"above {plan['capacity_limit']} at once. Targets: 0 failed, max in flight ≤ "
        f"{plan['capacity_limit']}, 0 429s, throughput ≥ 95% of {plan['capacity_limit']} × the pace (with no "
        "limit on the engine: that of the jobs that succeeded).",
        "",
    ]
    rows = []
    for r in runs:
        slots = r.get("upstream_slots") or {}
        idle = (slots.get("slot_idle_between_jobs_ms") or {}).get("mean")
        rows.append(
            [
                r["engine_max_concurrency"] or "none",
                r["failed"],
                _counts(r["failures_by_reason"]),
                r["upstream"]["max_in_flight"],
                r["upstream"]["rejected_429"],
                _pct(r.get("throughput_vs_slots_at_pace")),
                _pct(slots.get("slots_busy")),
                idle,
                r.get("run_s_mean"),
                r["elapsed_s"],
                r.get("machine", {}).get("other_cores"),
            ]
        )
    head = ["engine limit", "failed", "why", "upstream max in flight", "429s",
            "throughput vs limit × pace", "upstream slots busy", "slot idle between jobs (ms, mean)",
            "claim → end (s, mean)", "elapsed (s)", "other load (cores)"]  # fmt: skip
    return out + _table(head, rows) + _handoffs([r["handoff_trace"] for r in runs if r.get("handoff_trace")])


def _handoffs(traces: list[dict[str, Any]]) -> list[str]:
    """Where a slot's time went between one job's generation end and the next's start (the
    workers' traces, bench/sched_shim.py), per limited run: p50 / mean ms."""
    if not traces:
        return []
    total = "generation end → next generation start"
    names = [total, *traces[0]["steps_ms"]]

    def cell(trace: dict[str, Any], name: str) -> str:
        ms = trace["generation_end_to_next_generation_start_ms"] if name == total else trace["steps_ms"][name]
        return f"{ms['p50']:g} / {ms['mean']:g}"

    head = ["a slot's handoff (ms, p50 / mean)", *(f"limited run {i + 1}" for i in range(len(traces)))]
    return _table(head, [[name, *(cell(t, name) for t in traces)] for name in names])


def _fairness(runs: list[dict[str, Any]], plan: dict[str, Any]) -> list[str]:
    alone = {r["a_priority"]: r["a_jobs_per_s"] for r in runs if not r["b_jobs"]}
    out = [
        f"**Fairness.** Owner A creates {plan['fairness_jobs']} jobs, then owner B 50 default jobs over "
        f"HTTP, one every 0.2 s; engine limited to {plan['fairness_limit']} (upstream too), "
        f"{plan['fairness_tokens']} tokens at {plan['fairness_tps']:g} tok/s "
        f"({plan['fairness_tokens'] / plan['fairness_tps']:g} s on average, the unit of B's waits; each "
        f"generation's length drawn from ± {plan.get('fairness_vary', 0) * 100:g}%). "
        f"{plan['fairness_note']}",
        "",
    ]
    rows = []
    for r in runs:
        b = r.get("b") or {}
        base = alone.get(r["a_priority"]) or alone.get("batch")
        rows.append(
            [
                f"A {r['a_priority']}" + (" + B default" if r["b_jobs"] else " alone"),
                r["a_jobs"],
                (b.get("in_units") or {}).get("p50"),
                (b.get("in_units") or {}).get("p99"),
                (b.get("queue_wait_s") or {}).get("p99"),
                _split(b.get("until_a_slot_freed_s")),
                _split(b.get("from_that_slot_to_claim_s")),
                r["a_jobs_per_s"],
                _pct(r["a_jobs_per_s"] / base) if base and r["a_jobs_per_s"] and r["b_jobs"] else None,
                _pct((r.get("engine") or {}).get("throughput_vs_slots_at_pace")),
                r["failed"],
                r["upstream"]["rejected_429"],
                r["elapsed_s"],
                r.get("machine", {}).get("other_cores"),
            ]
        )
    head = ["run", "A's jobs", "B wait p50 (gens)", "B wait p99 (gens)", "B wait p99 (s)",
            "B: until a slot freed (s, p50 / p99)", "B: that slot → claimed (s, p50 / p99)", "A jobs/s",
            "A vs A alone", "engine throughput vs limit × pace", "failed", "429s", "elapsed (s)",
            "other load (cores)"]  # fmt: skip
    return out + _table(head, rows)


def _priority(runs: list[dict[str, Any]], plan: dict[str, Any]) -> list[str]:
    generation = plan["fairness_tokens"] / plan["fairness_tps"]
    out = [
        f"**Priority.** {plan['priority_backlog']} default jobs of owner A over HTTP, then 50 interactive "
        f"jobs of owner B, one every 0.2 s; engine limited to {plan['fairness_limit']}, generations of "
        f"{generation:g} s on average (± {plan.get('fairness_vary', 0) * 100:g}%), so a slot frees every "
        f"{generation / plan['fairness_limit'] * 1000:.0f} ms on average "
        "(one slot's turnover). The backlog left once the interactive jobs ended is cancelled.",
        "",
    ]
    rows = []
    for r in runs:
        w = r["interactive_waits"]
        rows.append(
            [
                r["default_waiting_when_interactive_began"],
                w["queue_wait_s"]["p50"],
                w["queue_wait_s"]["p99"],
                w["in_slot_turnovers"]["p99"],
                w["in_units"]["p99"],
                _split(w.get("until_a_slot_freed_s")),
                _split(w.get("from_that_slot_to_claim_s")),
                ", ".join(f"{k} {v}" for k, v in r["interactive_classes"].items()),
                r["interactive_failed"],
                r["upstream"]["rejected_429"],
                r.get("machine", {}).get("other_cores"),
            ]
        )
    head = ["default jobs waiting", "interactive wait p50 (s)", "p99 (s)", "p99 (slot turnovers)",
            "p99 (gens)", "until a slot freed (s, p50 / p99)", "that slot → claimed (s, p50 / p99)", "ran as",
            "failed", "429s", "other load (cores)"]  # fmt: skip
    return out + _table(head, rows)


def _lease(r: dict[str, Any]) -> list[str]:
    out = [
        f"**Lease.** {r['jobs']} jobs of {r['generation_s']:g} s on an engine limited to "
        f"{r['engine_max_concurrency']}, started while one worker ran (it took every slot); a second worker "
        f"started, then the first SIGKILLed with {r['dead_workers_jobs_running_at_kill']} jobs running with "
        "output. Defaults: `SPOOL_LEASE_SECONDS` 30 (renewed every 10 s), `SPOOL_HEARTBEAT_TTL_SECONDS` 20, "
        "the sweeper every 10 s. The jobs still running once every waiting one started are cancelled by "
        "the benchmark (to bound it).",
        "",
    ]
    row = [
        r["slots_in_use_at_kill"],
        r["slots_back_after_s"],
        ", ".join(f"{s:g}" for s in r["waiting_jobs_started_after_s"]) or None,
        _counts(r["dead_workers_jobs_ended"]),
        _counts(r["other_jobs_ended"]),
        r["not_ended"],
        r["lost"],
    ]
    head = ["slots in use at the kill", "dead worker's slots back after (s)",
            "waiting jobs started after (s)", "dead worker's jobs ended", "the others ended", "not ended",
            "lost"]  # fmt: skip
    timeline = "; ".join(
        f"{t:g} s: {s} in use, {w} waiting, {d} held by the dead" for t, s, w, d in r["timeline"]
    )
    said = f"After the kill (`admission.status(engine)`): {timeline}."
    return out + _table(head, [row]) + [said, ""]


def _lost_message(r: dict[str, Any]) -> list[str]:
    out = [
        "**Lost message.** One job on an idle limited engine, admitted at once, its Celery message never "
        "sent (the process died between the admission and the publish, or the publish failed); looked at "
        f"{r['seconds_since_created']:g} s later (`SPOOL_REQUEUE_AFTER_SECONDS` 120, "
        "`SPOOL_ADMISSION_LEASE_SECONDS` 60, the sweeper every 10 s). Target: it runs.",
        "",
    ]
    entry = f"`{r['scheduler_state']}`" if r["scheduler_state"] else None
    row = [r["status"], r["finish_reason"], entry, r["leases_in_use"]]
    return out + _table(["job status", "finish reason", "the scheduler's entry", "slots in use"], [row])


def _idempotency(r: dict[str, Any]) -> list[str]:
    rows = [
        [
            i + 1,
            x["callers"],
            x["distinct_job_ids"],
            x["job_rows"],
            ", ".join(f"{k} {v}" for k, v in x["errors"].items()),
        ]
        for i, x in enumerate(r["runs"])
    ]
    out = [f"**Idempotency.** One key, every caller released at once ({r['way']}). Target: 1 job.", ""]
    return out + _table(["run", "callers", "distinct job ids", "job rows", "errors"], rows)


def _before_after(r: dict[str, Any]) -> list[str]:
    out = [
        f"**No limits, before and after.** {r['generations_per_turn']} generations one after another per "
        f"turn on the OpenAI face (`{r['model']}`), turns alternated between the two stacks; each "
        "column lists the turns, then (median).",
        "",
    ]
    rows = []
    for label, s in r.items():
        if not isinstance(s, dict) or "turns" not in s:
            continue
        m = s["median"]
        rows.append(
            [
                label,
                f"{', '.join(map(str, s['queue_ms_p50']))} ({m['queue_ms_p50']})",
                ", ".join(map(str, s["queue_ms_p99"])),
                f"{', '.join(map(str, s['ttft_ms_p50']))} ({m['ttft_ms_p50']})",
                f"{', '.join(map(str, s['worker_cpu_ms_per_job']))} ({m['worker_cpu_ms_per_job']})",
                f"{', '.join(map(str, s['web_cpu_ms_per_job']))} ({m['web_cpu_ms_per_job']})",
                s["errors"],
            ]
        )
    head = ["checkout", "queue stage p50 (ms)", "queue stage p99 (ms)", "TTFT p50 (ms)",
            "worker CPU per job (ms)", "web CPU per job (ms)", "errors"]  # fmt: skip
    return out + _table(head, rows)


def generated(results: dict[str, Any]) -> str:
    plan, machine, ways = results["plan"], results["machine"], results["ways"]
    lines = [
        f"Run {results['finished_at']}, {results['elapsed_s']:.0f} s: `{results['command']}` on "
        f"{machine['nproc']} cores ({machine['cpu_model']}), code {machine['code']}; "
        f"priority asked {ways['priority']}; idempotency key {ways['idempotency_key']}. "
        "*Other load*: the machine's busy cores not used by this benchmark's processes (other sessions' "
        "tests, Postgres, Redis).",
        "",
    ]
    if results.get("capacity"):
        lines += _capacity(results["capacity"], plan)
    if results.get("fairness"):
        lines += _fairness(results["fairness"], plan)
    if results.get("priority"):
        lines += _priority(results["priority"], plan)
    if results.get("lease"):
        lines += _lease(results["lease"])
    if results.get("lost_message"):
        lines += _lost_message(results["lost_message"])
    if results.get("idempotency"):
        lines += _idempotency(results["idempotency"])
    if results.get("before_after"):
        lines += _before_after(results["before_after"])
    return "\n".join(lines).rstrip()


def write(results: dict[str, Any], doc: Path) -> None:
    """Replaces what is between the markers (adding the section at the end the first time)."""
    text = doc.read_text()
    if BEGIN not in text:
        text = text.rstrip() + f"\n\n{HEADING}\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    doc.write_text(f"{head}{BEGIN}\n{generated(results)}\n{END}{tail}")


def main() -> None:
    """`python -m bench.sched_report [JSON [DOC]]`: render the section again from a run's figures
    (docs/scheduler-bench.json into docs/PERFORMANCE.md by default), without rerunning anything."""
    import json
    import sys

    root = Path(__file__).resolve().parent.parent / "docs"
    figures = Path(sys.argv[1]) if len(sys.argv) > 1 else root / "scheduler-bench.json"
    doc = Path(sys.argv[2]) if len(sys.argv) > 2 else root / "PERFORMANCE.md"
    write(json.loads(figures.read_text()), doc)


if __name__ == "__main__":
    main()
