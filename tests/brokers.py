"""The two brokers Spool runs on, for tests that must pass on both: the test Redis (the default)
and the machine's RabbitMQ. Each Spool the tests start consumes a queue of its own
(tests/servers.py); on RabbitMQ that queue is durable, so it is deleted when the Spool stops."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu import Connection

from tests.servers import Spool, keep_logs_with_tracebacks, start_spool

AMQP_URL = os.environ.get("SPOOL_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
BROKERS = ["redis", "amqp"]


def broker_env(broker: str) -> dict[str, str]:
    """start_spool's overrides for a broker named in BROKERS."""
    return {"CELERY_BROKER_URL": AMQP_URL} if broker == "amqp" else {}


def require_rabbitmq() -> None:
    """Fail at once, saying why, rather than let a worker retry an absent broker until the test
    times out. A missing RabbitMQ fails these runs instead of skipping them: a skip shows nothing."""
    try:
        with Connection(AMQP_URL, connect_timeout=5) as conn:
            conn.connect()
    except Exception as exc:
        pytest.fail(f"the RabbitMQ runs need RabbitMQ at {AMQP_URL} (SPOOL_TEST_AMQP_URL): {exc}")


def forget_queue(spool: Spool) -> None:
    """Delete a stopped Spool's queue from RabbitMQ (nothing to do on Redis: a list that is
    empty does not exist)."""
    url = spool.processes.env.get("CELERY_BROKER_URL", "")
    if url.startswith("amqp://"):
        with Connection(url, connect_timeout=5) as conn:
            queue = spool.processes.env["SPOOL_CELERY_QUEUE"]
            for name in (queue, f"{queue}-batch", f"{queue}-webhooks"):
                conn.default_channel.queue_delete(name)


def deliveries(spool: Spool) -> int:
    """How many task messages the Spool's worker received (Celery logs each delivery at INFO:
    "Task spool.run_job[<task id>] received"); meant for a Spool that ran one job."""
    log = (spool.processes.logs / "worker.log").read_text(errors="replace")
    return sum(1 for line in log.splitlines() if "spool.run_job[" in line and " received" in line)


def skipped_deliveries(spool: Spool, job_id: str) -> int:
    """Deliveries of the job's task that found it taken already (jobs/worker/runner.py)."""
    log = (spool.processes.logs / "worker.log").read_text(errors="replace")
    return log.count(f"job {job_id}: not queued any more")


def broker_of(spool: Spool) -> str:
    """ "amqp" or "redis": which broker a Spool the tests started runs on."""
    return "amqp" if spool.processes.env.get("CELERY_BROKER_URL", "").startswith("amqp") else "redis"


def figures_name(spool: Spool, name: str) -> str:
    """The artifacts name of a test's figures: the run on Redis alone keeps the plain name."""
    if spool.processes.env.get("SPOOL_CHUNKLOG_REDIS_CLUSTER") == "1":
        name = f"{name}-cluster"
    return name if broker_of(spool) == "redis" else f"{name}-{broker_of(spool)}"


@contextlib.contextmanager
def spool_on(
    broker: str, django_db_blocker, logs: Path, *, concurrency: int = 64, **env: str
) -> Iterator[Spool]:
    """A Spool of a test module's own on `broker`; stopped, its queue deleted and its logs kept
    (when they hold a traceback) at the end."""
    if broker == "amqp":
        require_rabbitmq()
    running = start_spool(django_db_blocker, logs, concurrency=concurrency, **env, **broker_env(broker))
    try:
        yield running
    finally:
        running.processes.stop()
        forget_queue(running)
        keep_logs_with_tracebacks(running)
