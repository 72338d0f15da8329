"""The admin dashboard at real sizes: seeds N stored completions in a separate database, times the
changelist pages through Django's test client as a staff user, and records every SQL query.

    .venv/bin/python bench/dashboard.py --rows 1000000

Writes docs/DASHBOARD.md (figures between its BENCH markers) and docs/dashboard-bench.json.
Rerunning reuses the rows already seeded; --rows tops the table up to that many.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DOC = ROOT / "docs" / "DASHBOARD.md"
RESULTS = ROOT / "docs" / "dashboard-bench.json"
BEGIN, END = "<!-- BENCH:BEGIN -->", "<!-- BENCH:END -->"
LIST = "/admin/jobs/storedcompletion/"
HEADLINE = "metadata filter: team=search"
SEARCH_HEADLINE = "content search: a word 'daughter'"


def scenarios(sample: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(name, URL, repetitions); 0 repetitions means --repetitions."""
    meta = lambda *pairs: urlencode([("meta", p) for p in pairs])  # noqa: E731
    search = lambda text: urlencode({"q": text})  # noqa: E731
    return [
        (HEADLINE, f"{LIST}?{meta('team=search')}", 0),
        ("metadata filter: team=search & env=prod", f"{LIST}?{meta('team=search', 'env=prod')}", 0),
        ("metadata filter: rare value (one customer)", f"{LIST}?{meta('customer=cust-4321')}", 0),
        ("metadata filter: uncommon value (verdict=bad, ~1%)", f"{LIST}?{meta('verdict=bad')}", 0),
        (
            "metadata filter: experiment=exp-07 & env=prod",
            f"{LIST}?{meta('experiment=exp-07', 'env=prod')}",
            0,
        ),
        ("metadata filter, values of a key listed", f"{LIST}?{meta('team=search')}&meta_key=feature", 0),
        ("metadata filter, page 5", f"{LIST}?{meta('team=search')}&p=5", 0),
        ("metadata filter + month", f"{LIST}?{meta('env=prod')}&{sample['month_query']}", 0),
        ("search box key=value: team=support", f"{LIST}?q=team%3Dsupport", 0),
        ("model filter: gpt-4o", f"{LIST}?model=gpt-4o", 0),
        ("unfiltered list", LIST, 0),
        ("unfiltered list, page 200", f"{LIST}?p=200", 0),
        ("completion detail page", f"{LIST}{sample['completion_id']}/change/", 0),
        ("jobs list", "/admin/jobs/job/", 0),
        # Full-text search (jobs/search.py): the GIN index on the search vector.
        (SEARCH_HEADLINE, f"{LIST}?{search('daughter')}", 0),
        ("content search: a phrase '\"good lord\"'", LIST + "?" + search('"good lord"'), 0),
        ("content search + metadata: 'daughter' & team=legal", f"{LIST}?{search('daughter team=legal')}", 0),
        ("content search: a word less one 'daughter -rome'", f"{LIST}?{search('daughter -rome')}", 0),
        ("content search: either word 'daughter or antium'", f"{LIST}?{search('daughter or antium')}", 0),
        ("content search: a rare word 'Antium'", f"{LIST}?{search('Antium')}", 0),
        ("content search: a common word 'lord'", f"{LIST}?{search('lord')}", 0),
        ("content search: a word, page 5", f"{LIST}?{search('daughter')}&p=5", 0),
        # Most relevant first ranks every match (ts_rank_cd): cost grows with their number.
        ("ranked search: 'Antium', most relevant first", f"{LIST}?{search('Antium')}&by=relevance", 5),
        ("ranked search: 'daughter', most relevant first", f"{LIST}?{search('daughter')}&by=relevance", 5),
    ]


def ensure_database(name: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(database: str) -> None:
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{database}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.pop("SPOOL_TEST_DATABASE", None)
    import django

    django.setup()


def open_database(name: str) -> int:
    """Make (if need be) and use the bench database `name`; returns its stored completions."""
    ensure_database(name)
    setup_django(name)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM jobs_storedcompletion")
        return cursor.fetchone()[0]


def seed(rows: int, seed_value: int) -> int:
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM jobs_storedcompletion")
        have = cursor.fetchone()[0]
    if have < rows:
        print(f"seeding {rows - have:,} rows (have {have:,})", flush=True)
        started = time.monotonic()
        call_command("spool_seed_completions", rows - have, seed=seed_value + have)
        print(f"seeded in {time.monotonic() - started:.0f} s", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE jobs_storedcompletion")
        cursor.execute("VACUUM ANALYZE jobs_job")
        cursor.execute("SELECT count(*) FROM jobs_storedcompletion")
        return cursor.fetchone()[0]


def sample_row() -> dict[str, Any]:
    from jobs.models import StoredCompletion

    newest = StoredCompletion.objects.order_by("-created_at").values("id", "created_at").first()
    when = newest["created_at"]
    return {
        "completion_id": newest["id"],
        "month_query": f"created_at__year={when.year}&created_at__month={when.month}",
    }


def staff_client() -> Any:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    return client


COUNT = re.compile(r"\bCOUNT\(", re.IGNORECASE)


def full_counts(queries: list[dict[str, Any]]) -> list[str]:
    """COUNT queries with no LIMIT inside: they would count every matching row."""
    return [q["sql"] for q in queries if COUNT.search(q["sql"]) and " LIMIT " not in q["sql"].upper()]


def measure(client: Any, url: str, repetitions: int) -> dict[str, Any]:
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    cache.clear()  # the first request fills the filter-choice caches: reported as "cold"
    connection.queries_log.clear()  # a full log (it keeps 9,000) would hide new queries
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as cold_queries:
        response = client.get(url)
    cold = time.perf_counter() - started
    # captured_queries reads the connection's log when asked; the next request clears that log.
    cold_captured = list(cold_queries.captured_queries)
    if response.status_code != 200:
        raise SystemExit(f"{url} answered {response.status_code}")
    connection.queries_log.clear()
    with CaptureQueriesContext(connection) as warm_queries:
        client.get(url)
    captured = list(warm_queries.captured_queries)
    times = []
    for _ in range(repetitions):
        started = time.perf_counter()
        client.get(url)
        times.append(time.perf_counter() - started)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    queries = [{"sql": q["sql"], "ms": round(float(q["time"]) * 1000, 1)} for q in captured]
    return {
        "url": url,
        "repetitions": repetitions,
        "median_ms": round(statistics.median(times) * 1000, 1),
        "p95_ms": round(p95 * 1000, 1),
        "min_ms": round(times[0] * 1000, 1),
        "cold_ms": round(cold * 1000, 1),
        "queries_warm": len(queries),
        "queries_cold": len(cold_captured),
        "sql_ms_warm": round(sum(q["ms"] for q in queries), 1),
        "full_counts": full_counts(captured + cold_captured),
        "cold_queries": [{"sql": q["sql"], "ms": round(float(q["time"]) * 1000, 1)} for q in cold_captured],
        "queries": queries,
    }


TABLE_SIZE = "(table with TOAST)"


def relation_sizes() -> dict[str, int]:
    """Bytes of the stored-completions table (rows and TOAST) and of each index, largest first."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_table_size('jobs_storedcompletion')")
        sizes = {TABLE_SIZE: cursor.fetchone()[0]}
        cursor.execute(
            "SELECT c.relname, pg_relation_size(c.oid) FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE i.indrelid = 'jobs_storedcompletion'::regclass ORDER BY 2 DESC"
        )
        return {**sizes, **dict(cursor.fetchall())}


def environment(rows: int, database: str) -> dict[str, Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0].split(" on ")[0]
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('jobs_storedcompletion'))")
        size = cursor.fetchone()[0]
        cursor.execute("SHOW shared_buffers")
        buffers = cursor.fetchone()[0]
    sizes = relation_sizes()
    heap = sizes.pop(TABLE_SIZE)
    return {
        "rows": rows,
        "database": database,
        "table_size": size,
        "heap_size": f"{heap / 2**20:,.0f} MB",
        "index_sizes": {name: f"{size / 2**20:,.0f} MB" for name, size in sizes.items()},
        "postgres": version,
        "shared_buffers": buffers,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        # The machine is shared: a high load average means other work competed for the CPUs.
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def markdown(env: dict[str, Any], results: dict[str, dict[str, Any]]) -> str:
    lines = [
        BEGIN,
        f"Measured {env['measured_at']} with {env['rows']:,} stored completions ({env['table_size']} with "
        f"indexes and TOAST) on {env['postgres']}, shared_buffers {env['shared_buffers']}, "
        f"{env['cpus']} CPUs (load average {env['load_average'][0]} at the end: the machine is shared), "
        f"Python {env['python']}. Times are whole requests through Django's test client (middleware, "
        "admin, template rendering, 100 rows a page), the filter-choice caches warm; *cold* is the "
        "first request after clearing them.",
        "",
        f"The table is {env['heap_size']} (rows and TOAST); its indexes: "
        + ", ".join(f"`{name}` {size}" for name, size in env["index_sizes"].items())
        + ".",
        "",
        "| page | median | p95 | cold | queries | SQL time | full COUNT(*) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} (n={r['repetitions']}) | {r['median_ms']} ms | {r['p95_ms']} ms | {r['cold_ms']} ms "
            f"| {r['queries_warm']} ({r['queries_cold']} cold) | {r['sql_ms_warm']} ms "
            f"| {'**yes**' if r['full_counts'] else 'none'} |"
        )
    for shown in (HEADLINE, SEARCH_HEADLINE):
        lines += ["", f"Queries of one warm `{shown}` page:", "", "```sql"]
        lines += [f"-- {q['ms']} ms\n{q['sql']}" for q in results[shown]["queries"]]
        lines += ["```"]
    lines += [END]
    return "\n".join(lines)


def write_doc(block: str) -> None:
    text = DOC.read_text() if DOC.exists() else f"# Dashboard\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    before, rest = text.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    DOC.write_text(before + block + after)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database", default="spool_bench")
    parser.add_argument("--repetitions", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="Print the figures; leave docs/ alone.")
    args = parser.parse_args()

    ensure_database(args.database)
    setup_django(args.database)
    rows = seed(args.rows, args.seed)
    client = staff_client()
    results: dict[str, dict[str, Any]] = {}
    for name, url, repetitions in scenarios(sample_row()):
        result = measure(client, url, repetitions or args.repetitions)
        results[name] = result
        print(
            f"{name:55} median {result['median_ms']:8.1f} ms  p95 {result['p95_ms']:8.1f} ms  "
            f"cold {result['cold_ms']:8.1f} ms  queries {result['queries_warm']}"
            + ("  FULL COUNT!" if result["full_counts"] else ""),
            flush=True,
        )
    env = environment(rows, args.database)
    block = markdown(env, results)
    if args.no_write:
        print(block)
        return
    RESULTS.write_text(json.dumps({"environment": env, "results": results}, indent=2) + "\n")
    write_doc(block)
    print(f"wrote {DOC.relative_to(ROOT)} and {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
