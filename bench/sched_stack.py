"""The scheduler benchmark's processes: the fake upstream, one web process and W Celery workers of
one checkout (this one, or the pre-scheduler one for the before/after), on a database, Redis DB,
key prefix and queue of their own, so another benchmark running meanwhile stays apart."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

from bench.processes import Watched
from harness.processes import free_port, start_logged, stop_groups

ROOT = Path(__file__).resolve().parent.parent
# Redis DBs 9 and 10: nothing else on this machine uses them (dev 0, bench 11-13, tests 15).
REDIS_DB = 10
PREFIX = "spoolsched"
_SECRET = secrets.token_urlsafe(50)


@dataclass(frozen=True, slots=True)
class Key:
    owner: str
    access: str
    secret: str


@dataclass
class SchedStack(Watched):
    run_dir: Path
    db: str = "spool_bench_sched"
    root: Path = ROOT  # the checkout whose web and workers run
    redis_db: int = REDIS_DB
    prefix: str = PREFIX  # Redis keys and the Celery queue
    worker_concurrency: int = 64
    settings: dict[str, str] = field(default_factory=dict)  # more environment for web and workers
    trace: bool = False  # workers run as bench/sched_shim.py, timing each job's steps
    web_port: int = field(default_factory=free_port)
    upstream_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:5432/{self.db}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:6379/{self.redis_db}"

    @property
    def upstream(self) -> str:
        return f"http://127.0.0.1:{self.upstream_port}"

    def env(self) -> dict[str, str]:
        return {
            "DJANGO_SECRET_KEY": _SECRET,
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{self.db}",
            "REDIS_URL": self.redis_url,
            "SPOOL_REDIS_PREFIX": self.prefix,
            "SPOOL_CELERY_QUEUE": self.prefix,
            # The abuse limits would cap a load test at 200 active jobs and 600 starts a minute.
            "SPOOL_MAX_ACTIVE_JOBS": "0",
            "SPOOL_JOBS_PER_MINUTE": "0",
            "SPOOL_REQUESTS_PER_MINUTE": "0",
            "SPOOL_LOG_LEVEL": "WARNING",
            **self.settings,
        }

    # ---- set-up ---------------------------------------------------------------------------

    def prepare(self) -> None:
        """A fresh database (dropped and migrated: a figure counts every job row) and Redis DB."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
            db.execute(f'CREATE DATABASE "{self.db}"')
        self.manage("migrate", "--no-input", "-v0")
        redis.Redis.from_url(self.redis_url).flushdb()
        for trace in self.trace_files():
            trace.unlink()

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    def key(self, owner: str) -> Key:
        out = self.manage("spool_key", owner, "--name", "bench")
        access = re.search(r"ACCESS_KEY=(\S+)", out)
        secret = re.search(r"SECRET_KEY=(\S+)", out)
        assert access and secret, out
        return Key(owner, access[1], secret[1])

    def engine(self, name: str, model: str) -> str:
        """An openai engine on the fake upstream, with no limit (any checkout)."""
        self.manage("spool_engine", "add", name, "--base-url", f"{self.upstream}/v1", "--model", model)
        return name

    # ---- processes ------------------------------------------------------------------------

    def start_upstream(self) -> None:
        argv = [sys.executable, "-m", "fakeupstream", "--port", str(self.upstream_port)]
        self.procs["upstream"] = start_logged(self.run_dir / "upstream.log", argv, self.env())
        self._wait_for(f"{self.upstream}/health")

    def _start_script(self, name: str, script: str, **env: str) -> None:
        argv = ["bash", str(self.root / "scripts" / script)]
        full = {
            **self.env(),
            "SPOOL_PYTHON": sys.executable,
            "SPOOL_METRICS_DIR": str(self.run_dir / "metrics"),
            **env,
        }
        self.procs[name] = start_logged(self.run_dir / f"{name}.log", argv, full)

    def start_web(self) -> None:
        # One process, so its CPU is read by pid (uvicorn's supervisor would hide its workers').
        self._start_script("web", "web.sh", PORT=str(self.web_port), SPOOL_WEB_CONCURRENCY="1")
        self._wait_for(f"http://127.0.0.1:{self.web_port}/Monolith/api/config")

    def start_worker(self, name: str) -> None:
        alive = self._alive_file(name)
        alive.unlink(missing_ok=True)
        traced = {
            "SPOOL_WORKER_MAIN": "bench.sched_shim",
            "SPOOL_BENCH_SCHED_TRACE": str(self.trace_file(name)),
        }
        self._start_script(
            name,
            "worker.sh",
            SPOOL_WORKER_CONCURRENCY=str(self.worker_concurrency),
            SPOOL_WORKER_HEARTBEAT_FILE=str(alive),
            **(traced if self.trace else {}),
        )

    def trace_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.trace"

    def trace_files(self) -> list[Path]:
        return sorted(self.run_dir.glob("*.trace"))

    def _alive_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.alive"

    def workers(self) -> list[str]:
        return sorted(name for name in self.procs if name.startswith("worker"))

    def wait_workers_ready(self, timeout: float = 120) -> None:
        """Until every worker consumes (its liveness file appears at Celery's worker_ready)."""
        deadline = time.monotonic() + timeout
        for name in self.workers():
            while not self._alive_file(name).exists():
                self.check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{name} not ready within {timeout:g} s; see {self.run_dir}/{name}.log"
                    )
                time.sleep(0.2)

    def start(self, workers: int) -> None:
        self.start_upstream()
        self.start_web()
        for i in range(workers):
            self.start_worker(f"worker{i + 1}")
        self.wait_workers_ready()

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown, no ack, no release; as an out-of-memory kill or a lost host."""
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            stop_groups([proc], timeout=20)

    def stop_all(self) -> None:
        for name in ("web", *self.workers(), "upstream"):
            self.stop(name)

    # ---- the fake upstream's counters ---------------------------------------------------------

    def upstream_stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.upstream}/_stats", timeout=10).json()
