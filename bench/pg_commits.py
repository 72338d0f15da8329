"""What one job's Postgres writes cost the server: the write transactions a job makes (create:
job row + room message; claim: one UPDATE; finish: UPDATE with the result and every chunk + room
message + stored completion),
replayed on rows of the same size in a scratch database that this script creates and drops,
from C concurrent connections. Reports Postgres backend CPU per job from /proc (the backends'
pids from pg_backend_pid()), jobs/s and commits/s at that concurrency, and the server's
synchronous_commit and fsync.

    .venv/bin/python -m bench.pg_commits [--jobs 2000] [--connections 1 4] [--repeats 3]

Prints one JSON document and writes it to run/bench/pg_commits.json."""

from __future__ import annotations

import argparse
import json
import random
import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from bench import procstat

ROOT = Path(__file__).resolve().parent.parent
SERVER = "postgresql://postgres@127.0.0.1:5432"
DATABASE = "spool_pg_commits_bench"
WORDS = [f"w{n}" for n in range(5000)]


def _text(words: int) -> str:
    return " ".join(random.choices(WORDS, k=words))  # not compressible away like "xxxx..."


def _chunks(tokens: int) -> str:
    """What the final commit stores in the job row: every chunk of the log, as JSON."""
    words = random.choices(WORDS, k=tokens)
    return json.dumps([{"type": "content", "data": {"content": " " + w}} for w in words])


REQUEST = json.dumps({"messages": [{"role": "user", "content": _text(60)}], "max_completion_tokens": 100})
ANSWER = _text(100)  # a 100-token answer: the room message, the result, the stored completion
CHUNKS = _chunks(100)
SCHEMA = """
CREATE TABLE job (id uuid PRIMARY KEY, owner int NOT NULL, status text NOT NULL, request text NOT NULL,
                  result text, chunks text, created timestamptz NOT NULL DEFAULT now(), started timestamptz,
                  finished timestamptz);
CREATE INDEX ON job (owner, created);
CREATE INDEX ON job (status);
CREATE TABLE message (id bigserial PRIMARY KEY, job uuid NOT NULL, role text NOT NULL, content text NOT NULL);
CREATE INDEX ON message (job);
CREATE TABLE completion (id uuid PRIMARY KEY, job uuid NOT NULL, model text NOT NULL, metadata jsonb,
                         body text NOT NULL, created timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON completion USING gin (metadata);
"""


def one_job(conn: psycopg.Connection[Any]) -> None:
    job = uuid.uuid4()
    with conn.transaction():  # the web's job_create
        conn.execute(
            "INSERT INTO job (id, owner, status, request) VALUES (%s, 1, 'queued', %s)", [job, REQUEST]
        )
        conn.execute("INSERT INTO message (job, role, content) VALUES (%s, 'user', 'hello')", [job])
    conn.execute(  # the worker's claim, by row count
        "UPDATE job SET status = 'running', started = now() WHERE id = %s AND status = 'queued'", [job]
    )
    with conn.transaction():  # the worker's final commit
        conn.execute(
            "UPDATE job SET status = 'succeeded', result = %s, chunks = %s, finished = now()"
            " WHERE id = %s AND status = 'running'",
            [ANSWER, CHUNKS, job],
        )
        conn.execute("INSERT INTO message (job, role, content) VALUES (%s, 'assistant', %s)", [job, ANSWER])
        conn.execute(  # only with store=true
            "INSERT INTO completion (id, job, model, metadata, body)"
            " VALUES (%s, %s, 'm', '{\"team\": \"a\"}', %s)",
            [uuid.uuid4(), job, ANSWER],
        )


def backend_pid(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def run(jobs: int, connections: int) -> dict[str, Any]:
    conns = [psycopg.connect(f"{SERVER}/{DATABASE}", autocommit=True) for _ in range(connections)]
    try:
        pids = [backend_pid(c) for c in conns]
        cpu0 = sum(procstat.cpu_seconds(p) for p in pids)
        started = time.monotonic()

        def work(conn: psycopg.Connection[Any]) -> None:
            for _ in range(jobs // connections):
                one_job(conn)

        threads = [threading.Thread(target=work, args=(c,)) for c in conns]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - started
        cpu = sum(procstat.cpu_seconds(p) for p in pids) - cpu0
        done = jobs // connections * connections
        return {
            "connections": connections,
            "jobs": done,
            "backend_us_per_job": round(cpu / done * 1e6),
            "jobs_per_s": round(done / wall),
            "commits_per_s": round(3 * done / wall),
        }
    finally:
        for conn in conns:
            conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        admin.execute(f"CREATE DATABASE {DATABASE}")
    try:
        with psycopg.connect(f"{SERVER}/{DATABASE}", autocommit=True) as conn:
            conn.execute(SCHEMA)
            settings = {
                name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                for name in ("synchronous_commit", "fsync", "wal_sync_method")
            }
        runs = []
        for _ in range(args.repeats):
            for connections in args.connections:
                runs.append(run(args.jobs, connections))
                print(json.dumps(runs[-1]), flush=True)
    finally:
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    result = {
        "machine": procstat.describe_machine(),
        "server": settings,
        "write_transactions_per_job": 3,
        "runs": runs,
        "by_connections": {
            c: {
                key: {"median": statistics.median(v), "min": min(v), "max": max(v)}
                for key in ("backend_us_per_job", "jobs_per_s", "commits_per_s")
                for v in [[r[key] for r in runs if r["connections"] == c]]
            }
            for c in args.connections
        },
    }
    out = ROOT / "run" / "bench" / "pg_commits.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result["by_connections"], indent=1))


if __name__ == "__main__":
    main()
