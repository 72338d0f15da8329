"""The admin overview at 1,000,000 jobs ended in the last 24 hours: seeds them (jobs only) in a
separate database, times the admin index through Django's test client as a staff user, and
measures what the rollup's trigger costs each job's final commit, alone and with workers ending
jobs at once on one engine (one hot rollup row).

    .venv/bin/python bench/overview.py --jobs 1000000

Prints the figures and writes docs/overview-bench.json; docs/DASHBOARD.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.dashboard import ensure_database, measure, setup_django, staff_client  # noqa: E402

RESULTS = ROOT / "docs" / "overview-bench.json"


def seed(jobs: int, seed_value: int, days: int = 1) -> int:
    """Top the jobs up to `jobs`, spread over the last `days`; how many there are."""
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM jobs_job")
        have = cursor.fetchone()[0]
    if have < jobs:
        print(f"seeding {jobs - have:,} jobs over the last {days} days (have {have:,})", flush=True)
        call_command("spool_seed_completions", jobs - have, days=days, jobs_only=True, seed=seed_value + have)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE jobs_job")
        cursor.execute("VACUUM ANALYZE jobs_jobminute")
        cursor.execute("SELECT count(*) FROM jobs_job")
        return cursor.fetchone()[0]


def sizes() -> dict[str, Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE finished_at > now() - interval '24 hours'),"
            " pg_total_relation_size('jobs_job') FROM jobs_job"
        )
        recent, job_bytes = cursor.fetchone()
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE minute > now() - interval '24 hours'),"
            " pg_total_relation_size('jobs_jobminute') FROM jobs_jobminute"
        )
        rows, rows_24h, rollup_bytes = cursor.fetchone()
    return {
        "jobs_ended_last_24h": recent,
        "jobs_table_bytes": job_bytes,
        "rollup_rows": rows,
        "rollup_rows_last_24h": rows_24h,
        "rollup_table_bytes": rollup_bytes,
    }


# ---- the trigger's cost on a job's final commit ---------------------------------------------

END_SQL = """UPDATE jobs_job SET status = 'succeeded', finished_at = now(),
    first_chunk_at = created_at + interval '300 ms', finish_reason = 'stop',
    usage = '{"input_tokens": 120, "output_tokens": 300}'::jsonb
    WHERE id = %s AND status = 'running'"""


def running_jobs(count: int) -> list[str]:
    from django.db import connection

    from jobs.models import Engine

    engine = Engine.objects.order_by("name").first()
    with connection.cursor() as cursor:
        cursor.execute("SELECT owner_id FROM jobs_job LIMIT 1")
        owner = cursor.fetchone()[0]
        ids = [str(uuid.uuid4()) for _ in range(count)]
        cursor.executemany(
            "INSERT INTO jobs_job (id, owner_id, engine_id, face, request, options, status, created_at,"
            " started_at, finish_reason, error) VALUES (%s, %s, %s, 'bench', '{}', '{}', 'running',"
            " now(), now(), '', '')",
            [(i, owner, engine.pk) for i in ids],
        )
    return ids


def end_each(ids: list[str], database: str) -> list[float]:
    """Seconds per job end, each UPDATE its own transaction, on a connection of this thread's own."""
    import psycopg

    times = []
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{database}", autocommit=True) as conn:
        for job_id in ids:
            started = time.perf_counter()
            conn.execute(END_SQL, [job_id])
            times.append(time.perf_counter() - started)
    return times


def end_concurrently(ids: list[str], database: str, threads: int) -> dict[str, float]:
    share = [ids[i::threads] for i in range(threads)]
    results: list[list[float]] = [[] for _ in range(threads)]

    def work(n: int) -> None:
        results[n] = end_each(share[n], database)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    every = sorted(t for times in results for t in times)
    return {
        "jobs_per_s": round(len(ids) / elapsed),
        "median_ms": round(statistics.median(every) * 1000, 3),
        "p95_ms": round(every[int(0.95 * (len(every) - 1))] * 1000, 3),
    }


def write_cost(database: str, jobs: int, threads: int) -> dict[str, Any]:
    from django.db import connection

    from jobs import rollup

    figures: dict[str, Any] = {}
    for with_trigger in (True, False, True):  # on, off, on again: drift shows as a difference
        if not with_trigger:
            with connection.cursor() as cursor:
                cursor.execute(rollup.DROP_SQL)
        try:
            label = "with trigger" if with_trigger else "without trigger"
            alone = end_each(running_jobs(jobs), database)
            together = end_concurrently(running_jobs(jobs), database, threads)
        finally:
            rollup.install()
        figures.setdefault(label, []).append(
            {
                "one_at_a_time_median_ms": round(statistics.median(alone) * 1000, 3),
                f"{threads}_threads": together,
            }
        )
    with connection.cursor() as cursor:  # the bench's own jobs leave; their counts are noise
        cursor.execute("DELETE FROM jobs_job WHERE face = 'bench'")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--database", default="spool_overview_bench")
    parser.add_argument("--repetitions", type=int, default=30)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--write-jobs", type=int, default=2000, help="Job ends per write-cost run.")
    parser.add_argument("--threads", type=int, default=8, help="Writers ending jobs at once.")
    args = parser.parse_args()

    ensure_database(args.database)
    setup_django(args.database)
    total = seed(args.jobs, args.seed)
    page = measure(staff_client(), "/admin/", args.repetitions)
    results = {
        "jobs": total,
        **sizes(),
        "overview": {k: v for k, v in page.items() if k != "cold_queries"},
        "write_cost": write_cost(args.database, args.write_jobs, args.threads),
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    summary = {k: v for k, v in results.items() if k != "overview"}
    summary["overview"] = {k: v for k, v in page.items() if k not in ("queries", "cold_queries")}
    summary["overview"]["queries"] = [(q["ms"], q["sql"][:90]) for q in page["queries"]]
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
