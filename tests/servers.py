"""Starts Spool as real processes for end-to-end tests: uvicorn (ASGI) and a Celery worker,
against the test Postgres database and the test Redis database."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.processes import ROOT, free_port, start_logged, stop_groups, wait_until_up


@dataclass
class User:
    username: str
    access_key: str
    secret_key: str


@dataclass
class Processes:
    """A web server and a worker; either can be killed and started again."""

    env: dict[str, str]
    logs: Path
    concurrency: int = 64
    port: int = field(default_factory=free_port)
    web: subprocess.Popen | None = None
    worker: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _start(self, name: str, script: str, **env: str) -> subprocess.Popen:
        # Through the same scripts as `make run` and the image, on this interpreter.
        argv = ["bash", str(ROOT / "scripts" / script)]
        env = {
            **self.env,
            "SPOOL_PYTHON": sys.executable,
            "SPOOL_METRICS_DIR": str(self.logs / "metrics"),
            **env,
        }
        return start_logged(self.logs / f"{name}.log", argv, env)

    def start_worker(self) -> None:
        self.worker = self._start(
            "worker",
            "worker.sh",
            SPOOL_WORKER_CONCURRENCY=str(self.concurrency),
            SPOOL_LOG_LEVEL=self.env.get("SPOOL_LOG_LEVEL", "WARNING"),
        )

    def start_web(self) -> None:
        # One web process: the tests share two cores with the worker and the test runner.
        self.web = self._start("web", "web.sh", PORT=str(self.port), SPOOL_WEB_CONCURRENCY="1")
        wait_until_up(f"{self.base_url}/Monolith/api/config", [self.web, self.worker])

    def stop_worker(self) -> None:
        """SIGTERM, as `docker stop` sends: a warm shutdown."""
        if self.worker is not None:
            stop_groups([self.worker])

    def kill_worker(self) -> None:
        """SIGKILL: no clean shutdown, no acknowledgements, as when a machine dies."""
        if self.worker is not None and self.worker.poll() is None:
            os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait(timeout=10)

    def stop(self) -> None:
        stop_groups([p for p in (self.web, self.worker) if p is not None])


@dataclass
class Spool:
    base_url: str
    engine_id: str
    alice: User
    bob: User
    artifacts: Path
    processes: Processes

    @property
    def semoss(self) -> str:
        return f"{self.base_url}/Monolith/api"


def _make_user(username: str) -> User:
    from jobs import services

    # A new key beside any other: a second Spool started in the same run must not revoke the
    # keys the first one's tests hold.
    user = services.user_ensure(username=username)
    key, secret = services.key_create(owner=user, name="e2e")
    return User(username, key.access_key, secret)


def start_spool(django_db_blocker, logs: Path, *, concurrency: int = 64, **env_overrides: str) -> Spool:
    """Start web + worker against the test database; env_overrides tune settings."""
    from django.db import connection

    from jobs import services

    with django_db_blocker.unblock():
        assert connection.settings_dict["NAME"].startswith("test_"), "the test database is not set up"
        engine = services.engine_ensure_offline()
        # Fast enough for a quick suite, slow enough that chunks arrive over several polls.
        engine.config = {"tokens_per_second": 150}
        engine.save()
        db = connection.settings_dict
        assert db["NAME"].startswith("test_"), f"refusing to run end-to-end tests on {db['NAME']!r}"
        alice, bob = _make_user("alice"), _make_user("bob")
    # Each Spool started here gets its own Celery queue: another instance's worker must not
    # take its jobs (a test that kills its worker expects its jobs to wait).
    env_overrides.setdefault(
        "SPOOL_CELERY_QUEUE", f"{os.environ.get('SPOOL_CELERY_QUEUE', 'celery')}-{logs.name}"
    )
    # Webhooks may reach receivers on loopback only: no test sends one off this machine.
    env_overrides.setdefault("SPOOL_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
    # The Batch API's files, shared by this Spool's web and worker only.
    env_overrides.setdefault("SPOOL_DATA_DIR", str(logs / "data"))
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        **env_overrides,
    }
    artifacts = Path(os.environ.get("SPOOL_ARTIFACTS", ROOT / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    processes = Processes(env=env, logs=logs, concurrency=concurrency)
    processes.start_worker()
    processes.start_web()
    return Spool(processes.base_url, str(engine.pk), alice, bob, artifacts, processes)


def keep_logs_with_tracebacks(spool: Spool) -> None:
    for log in spool.processes.logs.glob("*.log"):
        text = log.read_text(errors="replace")
        if "Traceback" in text:
            (spool.artifacts / f"{spool.processes.logs.name}-{log.name}").write_text(text)


@pytest.fixture(scope="session")
def spool(request) -> Spool:
    """A running Spool (web + worker) with the offline engine and two users, alice and bob; its
    chunk log on the test Redis, or on a Redis Cluster for the `cluster` run of a test marked
    `cluster` (tests/e2e/conftest.py). Both stay up for the session: this only picks one."""
    cluster = getattr(request, "param", "redis") == "cluster"
    return request.getfixturevalue("cluster_spool" if cluster else "single_spool")


@contextlib.contextmanager
def running_spool(django_db_blocker, logs: Path, **kwargs: Any) -> Iterator[Spool]:
    """start_spool for a with-block: stopped at its end, its logs kept when they hold a traceback."""
    running = start_spool(django_db_blocker, logs, **kwargs)
    try:
        yield running
    finally:
        running.processes.stop()
        keep_logs_with_tracebacks(running)


@pytest.fixture(scope="session")
def single_spool(django_db_setup, django_db_blocker, tmp_path_factory) -> Spool:
    """A running Spool (web + worker) with the offline engine and two users, alice and bob."""
    from tests.conftest import clear_redis

    clear_redis()
    with running_spool(django_db_blocker, tmp_path_factory.mktemp("spool-logs")) as running:
        yield running


__all__ = [
    "Processes",
    "running_spool",
    "Spool",
    "User",
    "free_port",
    "keep_logs_with_tracebacks",
    "single_spool",
    "spool",
    "start_spool",
]
