"""Writes the figures as performance.json and as the generated tables of PERFORMANCE.md."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bench import targets

BEGIN, END = "<!-- PERF:BEGIN -->", "<!-- PERF:END -->"
DASHBOARD_JSON = Path(__file__).resolve().parent.parent / "docs" / "dashboard-bench.json"


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _q(d: dict[str, Any] | None, a: str = "p50", b: str = "p99") -> str:
    return "—" if not d else f"{_f(d.get(a))} / {_f(d.get(b))}"


def _cell(value: Any) -> str:
    return (value if isinstance(value, str) else _f(value)).replace("|", "\\|")  # a pipe would end the cell


def _top(pairs: list[list[Any]] | None, n: int = 3) -> str:
    return ", ".join(f"{name} {seconds:g}" for name, seconds in (pairs or [])[:n]) or "—"


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


def _machine(r: dict[str, Any]) -> list[str]:
    m, idle = r["machine"], r["idle_cpu_cores"]
    load = " ".join(m["loadavg_at_start"])
    return [
        f"Run {r['finished_at']} on `{m.get('code', '?')}`, {r['plan']['name']} plan, {r['elapsed_s']:.0f} s."
        " "
        f"Machine: {m['nproc']} cores ({m['cpu_model']}, {m['cpu_mhz']} MHz), {m['memory_gib']} GiB, "
        f"Linux {m['kernel']}, Python {m['python']}; load average {load} at start.",
        "",
        "CPU in use with no load (cores): "
        + ", ".join(f"{name} {value:.3f}" for name, value in idle.items() if isinstance(value, float))
        + f" (the rest, in CPU seconds over 5 s: {_top(idle.get('rest_of_machine_top_s'))})"
        + ". *rest_of_machine* is everything not named (other programs, the kernel); when it is not"
        " near 0 the machine was shared and the figures are noisier. Other sessions on the bench"
        f" database at start: {m.get('other_sessions_on_bench_db', '?')}.",
    ]


def _latency(cells: list[dict[str, Any]]) -> list[str]:
    head = [
        "pace",
        "conc.",
        "face",
        "gens",
        "errors",
        "TTFT p50 / p99 ms",
        "added TTFT p50 / p99 ms",
        "delivery p50 / p99 ms",
        "chunks/s",
        "stream tok/s p50 / p10",
        "client lag p99 ms",
    ]
    rows = [
        [
            c["pace"],
            c["concurrency"],
            c["face"],
            c["generations"],
            c["errors"],
            _q(c["ttft_ms"]),
            _q(c.get("added_ttft_ms")),
            _q(c.get("delivery_ms")),
            c["throughput_chunks_s"],
            _q(c["stream_rate_tok_s"], "p50", "p10"),
            c["client_loop_lag_ms"]["p99"],
        ]
        for c in cells
    ]
    return _table(head, rows)


def _cpu(cells: list[dict[str, Any]]) -> list[str]:
    names = ["web", "worker", "web+worker", "upstream", "client", "redis", "postgres", "rest_of_machine"]
    head = ["pace", "conc.", "face", *names, "web cores", "worker cores", "the rest was (CPU s)"]
    rows = [
        [
            c["pace"],
            c["concurrency"],
            c["face"],
            *[c["cpu_us_per_chunk"].get(n) for n in names],
            c["cpu_cores_busy"]["web"],
            c["cpu_cores_busy"]["worker"],
            _top(c.get("rest_of_machine_top_s"), 2),
        ]
        for c in cells
    ]
    return _table(head, rows)


def _breakdown(cells: list[dict[str, Any]]) -> list[str]:
    stages = ["accept", "queue", "worker", "deliver"]
    head = ["pace", "conc.", "face", *[f"{s} p50 / p99 ms" for s in stages]]
    rows = [
        [c["pace"], c["concurrency"], c["face"], *[_q(c["ttft_breakdown_ms"].get(s)) for s in stages]]
        for c in cells
        if c.get("ttft_breakdown_ms")
    ]
    return _table(head, rows)


def _writes(cells: list[dict[str, Any]]) -> list[str]:
    head = [
        "pace",
        "conc.",
        "face",
        "tokens/gen",
        "Postgres rows written / gen",
        "Postgres transactions / gen",
        "chunks per Redis append",
        "append round trip p50 / p99 ms",
    ]
    rows = [
        [
            c["pace"],
            c["concurrency"],
            c["face"],
            c["tokens_per_generation"],
            c["pg_rows_written_per_generation"],
            c["pg_transactions_per_generation"],
            c["chunks_per_redis_append"],
            _q(c["worker_append_rtt_ms"]),
        ]
        for c in cells
        if c["face"] != "direct"
    ]
    return _table(head, rows)


def _capacity(rows: list[dict[str, Any]]) -> list[str]:
    head = [
        "generations",
        "tok/gen",
        "finished",
        "errors",
        "worker tok/s p50 / p10",
        "upstream direct tok/s p50 / p10",
        "start delay p50 / p99 ms",
        "worker cores",
        "worker µs/chunk",
        "machine cores",
        "kept up",
    ]
    body = [
        [
            r["generations"],
            r["tokens_per_generation"],
            r["finished"],
            r["errors"],
            _q(r["worker_rate_tok_s"], "p50", "p10"),
            _q(r["upstream_direct_rate_tok_s"], "p50", "p10"),
            _q(r["start_delay_ms"]),
            r["worker_cpu_cores"],
            r["worker_cpu_us_per_chunk"],
            r["machine_cpu_cores"],
            "yes" if r["kept_up"] else "**no**",
        ]
        for r in rows
    ]
    return _table(head, body)


def _idle(rows: list[dict[str, Any]]) -> list[str]:
    head = [
        "waiters",
        "kind",
        "held s",
        "errors",
        "requests",
        "answered in p50 / p99 s",
        "web RSS before → peak MiB",
        "KiB / waiter",
        "open fds peak",
        "web cores",
        "web µs / waiter / s",
    ]
    body = [
        [
            r["waiters"],
            r["kind"],
            r["held_s"],
            r["errors"] if not r["errors"] else f"**{r['errors']}** ({'; '.join(r['error_samples'])[:120]})",
            r["requests"],
            _q(r.get("answer_s")),
            f"{r['web_rss_mib_before']} → {r['web_rss_mib_peak']}",
            r["web_rss_kib_per_waiter"],
            r["web_open_fds_peak"],
            r["web_cpu_cores"],
            r["web_cpu_us_per_waiter_second"],
        ]
        for r in rows
    ]
    return _table(head, body)


def _dashboard() -> list[str]:
    if not DASHBOARD_JSON.exists():
        return [
            "Not measured by this command: run `.venv/bin/python bench/dashboard.py` (docs/DASHBOARD.md)."
        ]
    source = "From `bench/dashboard.py` (docs/DASHBOARD.md, docs/dashboard-bench.json), not rerun here:"
    return [source, "", *targets.dashboard_lines(json.loads(DASHBOARD_JSON.read_text()))]


def _profiles(profiles: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for face, p in profiles.items():
        for proc, frames in p.get("frames", {}).items():
            out += [
                "",
                f"**{face}, {proc} process** ({frames.get('samples', 0)} busy samples):",
                "",
            ]
            for title, key in (
                ("self", "self_pct"),
                ("Spool's own frames, inclusive", "project_inclusive_pct"),
            ):
                out.append(f"- {title}: " + "; ".join(f"`{f}` {s}%" for f, s in frames.get(key, [])[:10]))
    return out


def _before(r: dict[str, Any], out: Path) -> dict[str, Any] | None:
    """The run kept as the baseline (performance-before.json), if it ran the same plan."""
    path = out / "performance-before.json"
    if not path.exists():
        return None
    before = json.loads(path.read_text())
    # Compared as JSON: a fresh run's plan holds tuples where the file's has lists.
    return before if before.get("plan") == json.loads(json.dumps(r.get("plan"))) else None


def generated(r: dict[str, Any], before: dict[str, Any] | None = None) -> str:
    cells = r["cells"]
    parts = [
        *_machine(r),
        "",
        "### Against the targets",
        "",
        *(
            [f"*Before*: the baseline run of {before.get('finished_at', '?')} (performance-before.json).", ""]
            if before
            else []
        ),
        *targets.table(r, before),
        "",
        "### Latency and throughput",
        "",
        "TTFT is measured from the client sending the request; *added* is "
        "Spool's minus the upstream's own (direct) at the same pace and concurrency; p50 / p99.",
        "",
        *_latency(cells),
        "",
        "### CPU per delivered content chunk (µs)",
        "",
        *_cpu(cells),
        "",
        "### Where the time to first token goes",
        "",
        *_breakdown(cells),
        "",
        "### Writes",
        "",
        *_writes(cells),
        "",
        "### One worker process at a realistic pace (nobody reading)",
        "",
        *_capacity(r["capacity"]),
        "",
        "### Idle waiters on one web process",
        "",
        *_idle(r["idle"]),
        "",
        "### Metadata filter over 1,000,000 stored completions",
        "",
        *_dashboard(),
    ]
    if r.get("profiles"):
        parts += ["", "### Profiles (py-spy on the thread holding the GIL, idle samples left out)"]
        parts += _profiles(r["profiles"])
    return "\n".join(parts)


SKELETON = f"# Spool performance\n\nGenerated by `python -m bench.pipeline`.\n\n{BEGIN}\n{END}\n"


def write(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    results.setdefault("finished_at", time.strftime("%Y-%m-%d %H:%M %Z"))
    (out / "performance.json").write_text(json.dumps(results, indent=1) + "\n")
    doc = out / "PERFORMANCE.md"
    text = doc.read_text() if doc.exists() else SKELETON
    if BEGIN not in text or END not in text:
        text = text.rstrip() + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    # Everything outside the markers is written by hand and kept.
    doc.write_text(f"{head}{BEGIN}\n{generated(results, _before(results, out))}\n{END}{tail}")


def main() -> None:
    """`python -m bench.report [DIR]`: render DIR/PERFORMANCE.md again from DIR/performance.json
    (say, once bench/dashboard.py has written its figures), without rerunning anything."""
    import sys

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs")
    write(json.loads((out / "performance.json").read_text()), out)


if __name__ == "__main__":
    main()
