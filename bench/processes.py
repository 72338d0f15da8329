"""Starts the fake upstream, uvicorn and a Celery worker on their own database, Redis DB and queue."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from harness.processes import free_port, start_logged, stop_groups, wait_until_up

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "spool_bench"
# Redis DB 12 and the spoolbench prefix/queue: nothing else on this machine uses them (dev: 0, tests: 15).
REDIS_URL = "redis://127.0.0.1:6379/12"
PREFIX = QUEUE = "spoolbench"
_BENCH_SECRET = secrets.token_urlsafe(50)


class Watched:
    """What every benchmark stack does with the processes it started: says which one died, and
    waits for a URL to answer while they all live."""

    run_dir: Path
    procs: dict[str, subprocess.Popen]

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.run_dir}/{name}.log")

    def _wait_for(self, url: str) -> None:
        try:
            wait_until_up(url, list(self.procs.values()))
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; see the logs in {self.run_dir}") from None


@dataclass
class Stack(Watched):
    run_dir: Path
    worker_concurrency: int
    web_port: int = field(default_factory=free_port)
    upstream_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    access_key: str = ""
    secret_key: str = ""
    # 0: not counted. The load cells turn the limit off (it would refuse them); the idle waiters
    # count their polls as a deployment does, under a limit none reaches.
    requests_per_minute: int = 0

    @property
    def append_log(self) -> Path:
        return self.run_dir / "appends.log"

    @property
    def upstream_url(self) -> str:
        return f"http://127.0.0.1:{self.upstream_port}/v1"

    def env(self) -> dict[str, str]:
        return {
            # Outside DEBUG Spool refuses to start without a real key; the bench's own, per run.
            "DJANGO_SECRET_KEY": _BENCH_SECRET,
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
            "REDIS_URL": REDIS_URL,
            "SPOOL_REDIS_PREFIX": PREFIX,
            "SPOOL_CELERY_QUEUE": QUEUE,
            # The abuse limits would cap a load test at 200 active jobs and 600 starts a minute.
            "SPOOL_MAX_ACTIVE_JOBS": "0",
            "SPOOL_JOBS_PER_MINUTE": "0",
            "SPOOL_REQUESTS_PER_MINUTE": str(self.requests_per_minute),
            "SPOOL_LOG_LEVEL": "WARNING",
            "SPOOL_BENCH_APPEND_LOG": str(self.append_log),
        }

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    # ---- set-up ---------------------------------------------------------------------------

    def prepare(self) -> None:
        """Create and migrate spool_bench, empty the bench's Redis DB, make a key."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.append_log.write_text("")
        exists = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc",
             f"SELECT 1 FROM pg_database WHERE datname='{DB_NAME}'", "postgres"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        if exists != "1":
            subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", DB_NAME], check=True)
        self.manage("migrate", "--no-input", "-v0")
        redis.Redis.from_url(REDIS_URL).flushdb()
        out = self.manage("spool_key", "bench", "--name", "benchmark")
        self.access_key = re.search(r"ACCESS_KEY=(\S+)", out).group(1)  # type: ignore[union-attr]
        self.secret_key = re.search(r"SECRET_KEY=(\S+)", out).group(1)  # type: ignore[union-attr]

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env(), capture_output=True, text=True
        )
        if done.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    def engine(self, tokens: int, tps: float, ttfb: float = 0) -> str:
        """An upstream engine on the fake server streaming `tokens` words at `tps` (0: full speed)."""
        name = f"bench-{tokens}-{tps:g}-{ttfb:g}"
        model = (
            f"fake?tokens={tokens}" + (f"&tps={tps:g}" if tps else "") + (f"&ttfb={ttfb:g}" if ttfb else "")
        )
        self.manage("spool_engine", "add", name, "--base-url", self.upstream_url, "--model", model)
        return name

    # ---- processes ------------------------------------------------------------------------

    def _start(self, name: str, argv: list[str]) -> None:
        self.procs[name] = start_logged(self.run_dir / f"{name}.log", argv, self.env())

    def start_upstream(self) -> None:
        self._start("upstream", [sys.executable, "-m", "fakeupstream", "--port", str(self.upstream_port)])
        self._wait_for(f"http://127.0.0.1:{self.upstream_port}/health")

    def _start_script(self, name: str, script: str, **env: str) -> None:
        # The same scripts as `make run`, so the figures are those of `make run`.
        argv = ["bash", str(ROOT / "scripts" / script)]
        self.procs[name] = start_logged(
            self.run_dir / f"{name}.log",
            argv,
            {
                **self.env(),
                "SPOOL_PYTHON": sys.executable,
                "SPOOL_METRICS_DIR": str(self.run_dir / "metrics"),
                **env,
            },
        )

    def start_web(self) -> None:
        # One web process: the benchmark reads its CPU by pid, and uvicorn's supervisor would
        # hide its workers' time behind another pid.
        self._start_script("web", "web.sh", PORT=str(self.web_port), SPOOL_WEB_CONCURRENCY="1")
        self._wait_for(f"http://127.0.0.1:{self.web_port}/Monolith/api/config")

    def start_worker(self, name: str = "worker") -> None:
        """One worker process; a second name starts another on the same queue."""
        self._start_script(
            name,
            "worker.sh",
            SPOOL_WORKER_CONCURRENCY=str(self.worker_concurrency),
            SPOOL_WORKER_MAIN="bench.workershim",  # times each chunk-log append, else untouched
        )

    def measure(
        self, measure: Callable[[Stack], Awaitable[dict[str, Any]]], name: str, workers: int = 1
    ) -> None:
        """For the one-off benchmarks: prepare, start upstream, web and `workers` workers, run
        measure(stack), stop everything, then print the figures and keep them in run_dir/name.json."""
        self.prepare()
        try:
            self.start_upstream()
            self.start_web()
            for i in range(workers):
                self.start_worker("worker" if i == 0 else f"worker{i + 1}")
            figures = asyncio.run(measure(self))
        finally:
            self.stop_all()
        (self.run_dir / f"{name}.json").write_text(json.dumps(figures, indent=2))
        print(json.dumps(figures, indent=2))

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            stop_groups([proc], timeout=20)

    def stop_all(self) -> None:
        for name in ("web", *sorted(n for n in self.procs if n.startswith("worker")), "upstream"):
            self.stop(name)

    def cancel_queued(self) -> None:
        """End every job still queued (the idle phase's), and drop their queue messages, so the
        worker does not run them later."""
        self.manage(
            "shell", "-c",
            "from jobs import services\nfrom jobs.models import Job\n"
            "for job in Job.objects.filter(status=Job.Status.QUEUED): services.job_cancel(job.pk)",
        )  # fmt: skip
        redis.Redis.from_url(REDIS_URL).delete(QUEUE)
