"""Prometheus metrics of web and worker processes, and the functions that move them."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import datetime

from kombu import Connection
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# Several processes per role (uvicorn workers, worker processes on one host) write their values
# to files in PROMETHEUS_MULTIPROC_DIR (set by scripts/web.sh and scripts/worker.sh before
# Python starts, as prometheus_client needs); a scrape sums them. Without it (tests, a shell)
# the metrics live in this process alone.
MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")

# Time to first token and job duration: from tens of milliseconds to the 15-minute job limit.
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900)

JOBS_CREATED = Counter(
    "spool_jobs_created", "Jobs accepted by the web, by engine and face.", ["engine", "face"]
)
JOBS_STARTED = Counter("spool_jobs_started", "Jobs a worker started generating, by engine.", ["engine"])
JOBS_ENDED = Counter("spool_jobs_ended", "Jobs ended, by engine and final status.", ["engine", "status"])
# Labelled by queue so that no sample exists until a worker runs something: web processes,
# which load this module too, then show none.
GENERATIONS_RUNNING = Gauge(
    "spool_worker_generations_running",
    "Generations running now, per worker process (the pid label) and queue.",
    ["queue"],
    multiprocess_mode="liveall",
)
TTFT = Histogram(
    "spool_job_time_to_first_token_seconds",
    "From the job's start on a worker to its first chunk, by engine.",
    ["engine"],
    buckets=TTFT_BUCKETS,
)
DURATION = Histogram(
    "spool_job_duration_seconds",
    "From the job's start on a worker to its end, by engine and final status.",
    ["engine", "status"],
    buckets=DURATION_BUCKETS,
)
CHUNKS_APPENDED = Counter("spool_chunks_appended", "Chunks appended to job logs.")
UPSTREAM_ERRORS = Counter("spool_upstream_errors", "Upstream failures that ended a job, by code.", ["code"])
UPSTREAM_RETRIES = Counter(
    "spool_upstream_retries", "Upstream calls retried, by HTTP status or error.", ["code"]
)
READERS_WAITING = Gauge(
    "spool_readers_waiting",
    "Long-polls and SSE streams waiting for a job's next chunk.",
    multiprocess_mode="livesum",
)
BACKEND_ERRORS = Counter(
    "spool_backend_errors", "Errors talking to Redis or Postgres, by backend.", ["backend"]
)
EMBEDDINGS = Counter(
    "spool_embedding_requests",
    "Embedding requests answered, by engine, face and outcome (ok or an error code).",
    ["engine", "face", "outcome"],
)
EMBEDDED_INPUTS = Counter("spool_embedded_inputs", "Inputs embedded, by engine.", ["engine"])
# Scheduling (jobs/scheduling/): only engines with limits have a queue of their own.
QUEUE_WAIT = Histogram(
    "spool_job_queue_wait_seconds",
    "From the job's creation to its start on a worker, by engine and priority class.",
    ["engine", "priority"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600),
)
JOBS_ADMITTED = Counter(
    "spool_jobs_admitted", "Jobs of a limited engine let through to the workers, by engine.", ["engine"]
)
JOBS_EXPIRED = Counter(
    "spool_jobs_expired", "Jobs that waited past their queue timeout, by engine.", ["engine"]
)
ENGINE_HOLDS = Counter(
    "spool_engine_holds",
    "Upstream 429s with Retry-After that held an engine's admissions, by engine.",
    ["engine"],
)
DEPLOYMENTS_COOLED = Counter(
    "spool_deployments_cooled",
    "Deployments cooled down after failing a job before its first chunk, by engine.",
    ["engine"],
)
JOBS_WAITING = Gauge(
    "spool_jobs_waiting",
    "Jobs waiting for a limited engine's capacity, by engine and priority class (read from Redis "
    "by each worker's sweeper: take the max across processes).",
    ["engine", "priority"],
    multiprocess_mode="max",
)
LEASES_IN_USE = Gauge(
    "spool_engine_leases",
    "Slots of a limited engine in use, by engine (as the sweeper last read them).",
    ["engine"],
    multiprocess_mode="max",
)


# ---- what web and worker call -------------------------------------------------------------------


def job_created(*, engine: str, face: str) -> None:
    JOBS_CREATED.labels(engine=engine, face=face).inc()


def job_started(*, engine: str) -> None:
    JOBS_STARTED.labels(engine=engine).inc()


def job_ended(*, engine: str, status: str, duration: float | None, ttft: float | None) -> None:
    """Once per job, by the process whose end of it committed (jobs.lifecycle: the runner, a
    cancel or an expiry while queued, a lost worker's reaping); `ttft` is None when no chunk
    came or none is known."""
    JOBS_ENDED.labels(engine=engine, status=status).inc()
    if duration is not None:
        DURATION.labels(engine=engine, status=status).observe(duration)
    if ttft is not None:
        TTFT.labels(engine=engine).observe(ttft)


def generations_running() -> Gauge:
    """This worker's gauge; the worker's task signals call .inc() and .dec() around each job
    (jobs/worker_hooks.py)."""
    from django.conf import settings

    return GENERATIONS_RUNNING.labels(queue=settings.SPOOL.broker.queue)


def chunks_appended(count: int) -> None:
    CHUNKS_APPENDED.inc(count)


def upstream_error(code: str) -> None:
    UPSTREAM_ERRORS.labels(code=code).inc()


def upstream_retry(code: str) -> None:
    """For engine.upstream's retry listener in a worker: `code` is an HTTP status or a failure kind."""
    UPSTREAM_RETRIES.labels(code=code).inc()


def queue_waited(*, engine: str, priority: str, seconds: float | None) -> None:
    if seconds is not None:
        QUEUE_WAIT.labels(engine=engine, priority=priority).observe(seconds)


def jobs_admitted(*, engine: str, count: int) -> None:
    JOBS_ADMITTED.labels(engine=engine).inc(count)


def job_expired(*, engine: str) -> None:
    JOBS_EXPIRED.labels(engine=engine).inc()


def deployment_cooled(*, engine: str) -> None:
    DEPLOYMENTS_COOLED.labels(engine=engine).inc()


def engine_held(*, engine: str) -> None:
    ENGINE_HOLDS.labels(engine=engine).inc()


def engine_queue(*, engine: str, waiting: dict[str, int], leases: int) -> None:
    for priority, count in waiting.items():
        JOBS_WAITING.labels(engine=engine, priority=priority).set(count)
    LEASES_IN_USE.labels(engine=engine).set(leases)


class reader_waiting:  # noqa: N801 (used as a function: `with reader_waiting():`)
    """Counts a long-poll or SSE stream as waiting while inside; `with` and `async with` alike,
    so it can join the `async with` that subscribes the reader."""

    def __enter__(self) -> None:
        READERS_WAITING.inc()

    def __exit__(self, *exc: object) -> None:
        READERS_WAITING.dec()

    async def __aenter__(self) -> None:
        READERS_WAITING.inc()

    async def __aexit__(self, *exc: object) -> None:
        READERS_WAITING.dec()


def embedding_answered(*, engine: str, face: str, outcome: str, inputs: int = 0) -> None:
    EMBEDDINGS.labels(engine=engine, face=face, outcome=outcome).inc()
    if inputs:
        EMBEDDED_INPUTS.labels(engine=engine).inc(inputs)


def backend_error(backend: str) -> None:
    """`redis` or `postgres`: an outage a request or a job ran into."""
    BACKEND_ERRORS.labels(backend=backend).inc()


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


# ---- exposition -------------------------------------------------------------------------------


def registry() -> CollectorRegistry:
    """What a scrape reads: the sum over every process sharing the directory, or this process."""
    if not MULTIPROC_DIR:
        return REGISTRY
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected)
    return collected


def exposition(*extra: Collector) -> bytes:
    """Every metric in the text format, then what `extra` collectors read at scrape time."""
    body = generate_latest(registry())
    if extra:
        # No auto-describe: registering must not run a collector's (Redis-reading) collect().
        scrape = CollectorRegistry(auto_describe=False)
        for collector in extra:
            scrape.register(collector)
        body += generate_latest(scrape)
    return body


class QueueDepth(Collector):
    """`spool_queue_depth{queue}`: messages waiting in each queue, asked of the broker at scrape
    time (Redis or RabbitMQ alike, through kombu). A queue the broker does not know is empty."""

    def __init__(self, broker_url: str, queues: list[str], timeout: float = 2.0) -> None:
        self.broker_url, self.queues, self.timeout = broker_url, queues, timeout

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("spool_queue_depth", "Jobs waiting in the queue.", labels=["queue"])
        try:
            with Connection(self.broker_url, connect_timeout=self.timeout) as conn:
                for queue in self.queues:
                    family.add_metric([queue], self._depth(conn, queue))
        except Exception:
            log.warning("queue depth unavailable: the broker did not answer", exc_info=True)
            return  # no sample rather than a wrong zero
        yield family

    @staticmethod
    def _depth(conn: Connection, queue: str) -> int:
        channel = conn.channel()
        try:
            # celery-types declares the abstract StdChannel; every transport's has these.
            return channel.queue_declare(queue=queue, passive=True).message_count  # type: ignore[attr-defined]
        except conn.channel_errors:
            return 0  # never declared (no worker yet) or, on Redis, no message ever left
        finally:
            channel.close()  # type: ignore[attr-defined]


def serve(port: int, addr: str = "0.0.0.0") -> bool:
    """The worker's exporter: /metrics on `port` from a thread. Workers on one host share one
    directory and the first to bind the port serves them all; the others find it taken."""
    try:
        start_http_server(port, addr=addr, registry=registry())
    except OSError as exc:
        log.info("metrics port %s taken (%s): another worker on this host serves them", port, exc)
        return False
    return True


def reap_dead_processes() -> None:
    """Drop the live gauges of processes that died without saying so (a SIGKILLed worker), so
    `spool_worker_generations_running` and `spool_readers_waiting` count only the living.
    Counters and histograms stay: a total must not go down when a process goes."""
    if not MULTIPROC_DIR:
        return
    for name in os.listdir(MULTIPROC_DIR):
        pid = name.rsplit("_", 1)[-1].removesuffix(".db")
        if pid.isdigit() and not _alive(int(pid)):
            multiprocess.mark_process_dead(int(pid), MULTIPROC_DIR)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, alive
    return True
