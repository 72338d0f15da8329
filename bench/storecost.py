"""What writing one stored completion costs at the table's current indexes and triggers: the
server-side time and WAL bytes of N single-row INSERTs (each its own transaction, as the runner's
completion_store is), measured with EXPLAIN (ANALYZE, WAL), then removed again.

    .venv/bin/python bench/storecost.py --database spool_bench --label after [--rows 2000]

Prints one JSON line (label, medians, means, index sizes) and appends it to docs/storecost.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.dashboard import open_database, relation_sizes  # noqa: E402

RESULTS = ROOT / "docs" / "storecost.json"


def _columns() -> list[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'jobs_storedcompletion'"
        )
        return [row[0] for row in cursor.fetchall()]


def measure(rows: int, seed: int) -> dict[str, Any]:
    from django.db import connection
    from django.utils import timezone

    from jobs.management.commands._seed_rows import Generator
    from jobs.management.commands.spool_seed_completions import _copy_value, copy_rows
    from jobs.models import Engine, Job, StoredCompletion

    rng = random.Random(seed)
    owners = list(StoredCompletion.objects.values_list("owner_id", flat=True).distinct()[:25])
    generator = Generator(rng, owners, list(Engine.objects.all()))
    now = timezone.now()
    pairs = [generator.row(now - timedelta(seconds=i)) for i in range(rows)]
    copy_rows(Job, [job for job, _ in pairs])  # the jobs exist first, as they do when a job ends
    present = set(_columns())
    fields = [
        f for f in StoredCompletion._meta.concrete_fields if f.column in present and f.column != "search"
    ]
    sql = (
        "EXPLAIN (ANALYZE, WAL, FORMAT JSON) INSERT INTO jobs_storedcompletion ("
        + ", ".join(f.column for f in fields)
        + ") VALUES ("
        + ", ".join(["%s"] * len(fields))
        + ")"
    )
    times, wal, trigger = [], [], []
    try:
        with connection.cursor() as cursor:
            for _, stored in pairs:  # autocommit: each INSERT is one transaction
                cursor.execute(sql, [_copy_value(f, stored) for f in fields])
                plan = cursor.fetchone()[0][0]
                times.append(plan["Execution Time"])
                wal.append(plan["Plan"].get("WAL Bytes", 0))
                trigger.append(sum(t["Time"] for t in plan.get("Triggers", [])))
    finally:  # plain SQL: the ORM's cascade would read columns this state of the table may lack
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM jobs_storedcompletion WHERE id = ANY(%s)", [[s["id"] for _, s in pairs]]
            )
            cursor.execute("DELETE FROM jobs_job WHERE id = ANY(%s)", [[job["id"] for job, _ in pairs]])
    return {
        "rows": rows,
        "median_ms": round(statistics.median(times), 3),
        "mean_ms": round(statistics.fmean(times), 3),
        "p95_ms": round(sorted(times)[int(0.95 * (len(times) - 1))], 3),
        "trigger_mean_ms": round(statistics.fmean(trigger), 3),
        "wal_bytes_mean": round(statistics.fmean(wal)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", default="spool_bench")
    parser.add_argument(
        "--label", required=True, help="What this state of the table is (before, after, ...)."
    )
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=991)
    args = parser.parse_args()
    table_rows = open_database(args.database)
    result = {"label": args.label, "table_rows": table_rows, **measure(args.rows, args.seed)}
    result["sizes"] = relation_sizes()
    print(json.dumps(result))
    existing = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    RESULTS.write_text(json.dumps([*existing, result], indent=2) + "\n")


if __name__ == "__main__":
    main()
