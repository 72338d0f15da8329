"""CPU and write counters read before and after a cell: every process's, Redis's and Postgres's."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis

from bench import procstat
from bench.processes import DB_NAME, REDIS_URL

DSN = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"


@dataclass(slots=True)
class Snapshot:
    at: float
    cpu: dict[str, float]  # seconds of CPU per process name, plus "redis" and "postgres"
    busy: float  # the machine's, all cores
    pg_rows_written: int
    pg_commits: int
    everyone: dict[int, tuple[str, float]]  # every process on the machine, to name the rest


def _postmaster() -> int:
    with psycopg.connect(DSN, autocommit=True) as db:
        row = db.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        stat = Path(f"/proc/{row[0]}/stat").read_text()  # while the backend is still there
    return int(stat[stat.rindex(")") + 2 :].split()[1])  # a backend's parent is the postmaster


_POSTMASTER: list[int] = []


def postgres_backends_cpu() -> float:
    """CPU of Postgres backends that have exited (the postmaster's reaped children), all databases:
    Spool opens a connection, so a backend, per web request and per job."""
    if not _POSTMASTER:
        _POSTMASTER.append(_postmaster())
    stat = Path(f"/proc/{_POSTMASTER[0]}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[13]) + int(fields[14])) / procstat.TICKS


def snapshot(pids: dict[str, int]) -> Snapshot:
    info = redis.Redis.from_url(REDIS_URL).info("cpu")
    with psycopg.connect(DSN, autocommit=True) as db:
        row = db.execute(
            "SELECT tup_inserted + tup_updated + tup_deleted, xact_commit"
            " FROM pg_stat_database WHERE datname = %s",
            (DB_NAME,),
        ).fetchone()
    assert row is not None
    cpu = {name: procstat.cpu_seconds(pid) for name, pid in pids.items()}
    cpu["redis"] = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    cpu["postgres"] = postgres_backends_cpu()
    busy, everyone = procstat.machine_busy_seconds(), procstat.all_processes_cpu()
    return Snapshot(time.monotonic(), cpu, busy, int(row[0]), int(row[1]), everyone)


def cpu_delta(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """Seconds of CPU per process over the interval, and the rest of the machine's (other
    engineers' tests, the kernel, anything not named)."""
    cpu = {name: after.cpu[name] - before.cpu[name] for name in after.cpu}
    cpu["rest_of_machine"] = max(0.0, after.busy - before.busy - sum(cpu.values()))
    return cpu


def other_sessions() -> int:
    """Sessions on the bench database that are not ours (bench/dashboard.py seeding, say): their
    writes would be counted in the figures."""
    with psycopg.connect(DSN, autocommit=True) as db:
        row = db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (DB_NAME,)
        ).fetchone()
    return int(row[0]) if row else 0
