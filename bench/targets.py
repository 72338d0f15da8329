"""The issue's targets for this 2-core machine, judged against a run's figures."""

from __future__ import annotations

from typing import Any

REFERENCE_CONCURRENCY = 100  # where the issue sets the TTFT target; the other targets are read there too


def _ok(met: bool | None) -> str:
    return "—" if met is None else ("yes" if met else "**no**")


def _le(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def judged(r: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, what was measured, met) for each of the issue's targets."""
    cells = r["cells"]
    conc = (
        REFERENCE_CONCURRENCY
        if any(c["concurrency"] == REFERENCE_CONCURRENCY for c in cells)
        else max(c["concurrency"] for c in cells)
    )
    ref = [c for c in cells if c["concurrency"] == conc and c["face"] != "direct"]
    rows: list[tuple[str, str, bool | None]] = []
    for c in ref:
        where = f"{c['face']}, {c['pace']}, c={conc}"
        added = c.get("added_ttft_ms") or {}
        rows.append((f"added TTFT p50 ≤ 5 ms ({where})", f"{added.get('p50')} ms", _le(added.get("p50"), 5)))
        rows.append(
            (f"added TTFT p99 ≤ 25 ms ({where})", f"{added.get('p99')} ms", _le(added.get("p99"), 25))
        )
    for c in ref:
        where = f"{c['face']}, {c['pace']}, c={conc}"
        p50 = c["delivery_ms"]["p50"]
        rows.append((f"delivery latency p50 ≤ 2 ms ({where})", f"{p50} ms", _le(p50, 2)))
    for c in ref:
        where = f"{c['face']}, {c['pace']}, c={conc}"
        us = c["cpu_us_per_chunk"]["web+worker"]
        rows.append((f"web + worker CPU ≤ 50 µs per chunk ({where})", f"{us} µs", _le(us, 50)))
    kept = [row["generations"] for row in r["capacity"] if row["kept_up"]]
    tried = ", ".join(str(row["generations"]) for row in r["capacity"])
    rows.append(
        (
            "one worker keeps ≥ 200 generations at 100 tok/s",
            f"kept up at {', '.join(map(str, kept)) or 'none'} (tried {tried})",
            bool(kept) and max(kept) >= 200,
        )
    )
    for idle in r["idle"]:
        rows.append(
            (
                f"{idle['waiters']:,} idle {idle['kind']} waiters, no errors",
                f"{idle['errors']} errors, web RSS {idle['web_rss_mib_peak']} MiB, answered in p50 "
                f"{(idle.get('answer_s') or {}).get('p50')} s",
                idle["errors"] == 0 and idle["waiters"] >= 1000,
            )
        )
    spool = [c for c in cells if c["face"] != "direct"]
    rows_per_gen = max(c["pg_rows_written_per_generation"] for c in spool)
    fewest_tokens = min(c["tokens_per_generation"] for c in spool)
    rows.append(
        (
            "no Postgres write per token",
            f"≤ {rows_per_gen} rows written per generation of {fewest_tokens}+ tokens",
            rows_per_gen < fewest_tokens / 4,
        )
    )
    full = [
        c["chunks_per_redis_append"] for c in spool if c["pace"] == "full" and c["chunks_per_redis_append"]
    ]
    rows.append(
        (
            "Redis writes batched (one round trip per batch)",
            f"{min(full) if full else '—'} – {max(full) if full else '—'} chunks per append at full speed",
            bool(full) and min(full) > 1,
        )
    )
    return rows


def table(r: dict[str, Any], before: dict[str, Any] | None = None) -> list[str]:
    """The targets table; with `before` (an earlier run of the same plan), its figures beside."""
    rows = judged(r)
    if before is None:
        lines = ["| target | measured | met |", "|---|---|---|"]
        return lines + [f"| {t} | {m} | {_ok(ok)} |" for t, m, ok in rows]
    earlier = {t: (m, ok) for t, m, ok in judged(before)}
    lines = ["| target | before | after | met |", "|---|---|---|---|"]
    for t, m, ok in rows:
        was, _ = earlier.get(t, ("—", None))
        lines.append(f"| {t} | {was} | {m} | {_ok(ok)} |")
    return lines


def dashboard_lines(data: dict[str, Any]) -> list[str]:
    env = data.get("environment", {})
    lines = [f"{env.get('rows', '?'):,} stored completions, measured {env.get('measured_at', '?')}.", ""]
    lines += ["| page | median ms | p95 ms | cold ms |", "|---|---|---|---|"]
    for name, r in data.get("results", {}).items():
        if "metadata" in name:
            lines.append(f"| {name} | {r.get('median_ms')} | {r.get('p95_ms')} | {r.get('cold_ms')} |")
    return lines
