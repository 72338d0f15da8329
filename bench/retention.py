"""The retention purge at 1,000,000 jobs: seeds them (jobs only, spread over 60 days) in a
separate database, starts a web process on it, and runs the purge of jobs in phases (each a
retention age and a batch size) while a client GETs finished jobs that stay over HTTP on
loopback. For each phase: rows deleted per second, the longest single DELETE (the longest any
row lock was held), and the GETs' latency during the purge against the same GETs before it.

    .venv/bin/python bench/retention.py --jobs 1000000

The purge deletes what it measures: a second run seeds the table up to --jobs again first.
Prints the figures and writes docs/retention-bench.json; docs/RETENTION.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.dashboard import ensure_database, setup_django  # noqa: E402
from bench.overview import seed  # noqa: E402
from bench.stats import ms  # noqa: E402
from harness.processes import free_port, start_logged, stop_groups, wait_until_up  # noqa: E402

DATABASE = "spool_retention_bench"
RESULTS = ROOT / "docs" / "retention-bench.json"
# Redis DB 12 with a prefix of its own, as the other benchmarks keep apart from dev (0) and tests (15).
REDIS_URL = "redis://127.0.0.1:6379/12"
PREFIX = "spoolretbench"
READER = "amara"  # one of the seeded owners: the GETs read its recent jobs, which stay
PHASES = "30:1000,10:5000,5:2000"  # retention days : rows per DELETE


def start_web(logs: Path) -> tuple[Any, str, str, list[str]]:
    """A web process on the bench database; a key of READER's and 200 of its recent job ids."""
    from django.db import connection

    from jobs import services
    from jobs.models import Job

    user = services.user_ensure(username=READER)
    _, secret = services.key_create(owner=user, name="retention-bench")
    recent = [
        str(job_id)
        for job_id in Job.objects.filter(owner=user)
        .order_by("-created_at")
        .values_list("id", flat=True)[:200]
    ]
    port = free_port()
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": REDIS_URL,
        "SPOOL_REDIS_PREFIX": PREFIX,
        "SPOOL_REQUESTS_PER_MINUTE": "0",
        "SPOOL_WEB_CONCURRENCY": "1",
        "SPOOL_LOG_LEVEL": "WARNING",
        "DJANGO_DEBUG": "0",
        "PORT": str(port),
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "SPOOL_METRICS_DIR": str(logs / "metrics"),
        "SPOOL_PYTHON": sys.executable,
    }
    web = start_logged(logs / "web.log", ["bash", str(ROOT / "scripts" / "web.sh")], env)
    base = f"http://127.0.0.1:{port}"
    wait_until_up(f"{base}/healthz", [web])
    return web, base, secret, recent


class Poller(threading.Thread):
    """GETs /v1/jobs/{id} one after another, cycling over the ids, until stopped (or `count`)."""

    def __init__(self, base: str, secret: str, ids: list[str], count: int | None = None) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {secret}"}, timeout=30)
        self.ids, self.count = ids, count
        self.gets: list[tuple[float, float, bool]] = []  # (monotonic start, seconds, ok)
        self.stopped = threading.Event()

    def run(self) -> None:
        turn = 0
        while not self.stopped.is_set() and (self.count is None or turn < self.count):
            started = time.monotonic()
            answer = self.client.get(f"/v1/jobs/{self.ids[turn % len(self.ids)]}")
            self.gets.append((started, time.monotonic() - started, answer.status_code == 200))
            turn += 1

    def figures(self, since: float = 0.0, until: float = float("inf")) -> dict[str, Any]:
        """Of the GETs that started within [since, until]."""
        within = [(seconds, ok) for at, seconds, ok in self.gets if since <= at <= until]
        return {
            "gets": len(within),
            "errors": sum(not ok for _, ok in within),
            **ms([seconds for seconds, _ in within], 50, 99, 100),
        }


def phase(days: int, batch: int, base: str, secret: str, ids: list[str]) -> dict[str, Any]:
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from jobs import chunklog, retention

    settings.SPOOL = replace(settings.SPOOL, retention=replace(settings.SPOOL.retention, job_days=days))
    deletes: list[float] = []
    redis_seconds = 0.0
    delete_keys = chunklog.delete_jobs

    def timed_delete_keys(job_ids: Any) -> int:  # how much of the time Redis takes
        nonlocal redis_seconds
        started = time.monotonic()
        try:
            return delete_keys(job_ids)
        finally:
            redis_seconds += time.monotonic() - started

    chunklog.delete_jobs = timed_delete_keys
    poller = Poller(base, secret, ids)
    poller.start()
    time.sleep(0.5)  # the client is going when the purge starts; only the GETs during it count
    started = time.monotonic()
    deleted = retention.purge_jobs(
        now=timezone.now(), batch=batch, observe=lambda what, rows, seconds: deletes.append(seconds)
    )
    ended = time.monotonic()
    chunklog.delete_jobs = delete_keys
    elapsed = ended - started
    poller.stopped.set()
    poller.join()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM jobs_job")
        left = cursor.fetchone()[0]
    row = {
        "retention_days": days,
        "batch": batch,
        "deleted": deleted,
        "left": left,
        "seconds": round(elapsed, 1),
        "rows_per_second": round(deleted / elapsed) if elapsed else None,
        "deletes": len(deletes),
        "longest_delete_ms": round(max(deletes, default=0) * 1000, 1),
        "delete_ms": ms(deletes, 50, 99),
        "seconds_in_deletes": round(sum(deletes), 1),
        "seconds_in_redis": round(redis_seconds, 1),
        "during": poller.figures(started, ended),
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--phases", default=PHASES, help="days:batch,... (default %(default)s)")
    parser.add_argument("--baseline-gets", type=int, default=400)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_DEBUG", "1")  # the purge runs here; the web gets a real key
    os.environ["REDIS_URL"] = REDIS_URL
    os.environ["SPOOL_REDIS_PREFIX"] = PREFIX
    ensure_database(DATABASE)
    setup_django(DATABASE)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per GET otherwise
    jobs = seed(args.jobs, 1, days=60)
    logs = ROOT / "run" / "retention-bench"
    logs.mkdir(parents=True, exist_ok=True)
    web, base, secret, ids = start_web(logs)
    try:
        Poller(base, secret, ids, count=50).run()  # warm the web process and its pools
        before = Poller(base, secret, ids, count=args.baseline_gets)
        before.run()
        print("before the purge:", json.dumps(before.figures()), flush=True)
        phases = [
            phase(int(days), int(batch), base, secret, ids)
            for days, batch in (item.split(":") for item in args.phases.split(","))
        ]
    finally:
        stop_groups([web])
    load = os.getloadavg()
    results = {
        "jobs_at_start": jobs,
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_at_end": [round(x, 1) for x in load],
        "before": before.figures(),
        "phases": phases,
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
