"""Metrics read at scrape time (queue depth from the broker) and the bookkeeping of processes."""

from __future__ import annotations

import os
import time

import redis
from django.conf import settings
from django.db import OperationalError
from django.test import RequestFactory
from kombu import Connection
from prometheus_client import CollectorRegistry

from harness.processes import free_port
from jobs import metrics
from jobs.faces.common.errors import error_response
from jobs.overload import RedisPoolExhausted
from jobs.worker import runner
from tests.brokers import AMQP_URL, require_rabbitmq


def depth_of(collector: metrics.QueueDepth) -> dict[str, float]:
    return {
        sample.labels["queue"]: sample.value for family in collector.collect() for sample in family.samples
    }


def test_queue_depth_counts_the_messages_waiting_on_a_redis_broker():
    queue = f"{settings.SPOOL.broker.queue}-depth"
    client = redis.Redis.from_url(settings.SPOOL.broker.redis_url)
    client.delete(queue)
    client.lpush(queue, "a", "b", "c")  # kombu's Redis transport keeps a queue as a list
    try:
        depth = metrics.QueueDepth(settings.SPOOL.broker.redis_url, [queue, f"{queue}-never-used"])
        assert depth_of(depth) == {queue: 3, f"{queue}-never-used": 0}
    finally:
        client.delete(queue)


def test_queue_depth_gives_no_sample_rather_than_a_wrong_zero_when_the_broker_is_down():
    depth = metrics.QueueDepth(f"redis://127.0.0.1:{free_port()}/0", ["celery"], timeout=0.5)
    assert depth_of(depth) == {}


def test_queue_depth_counts_the_messages_waiting_on_rabbitmq():
    require_rabbitmq()
    url, queue = AMQP_URL, f"{settings.SPOOL.broker.queue}-depth"
    with Connection(url) as conn:
        simple = conn.SimpleQueue(queue)
        simple.clear()
        try:
            simple.put({"n": 1})
            simple.put({"n": 2})
            # Another connection asks: RabbitMQ counts a message published on the first one
            # a moment later (no ordering across connections), so ask until it has both.
            deadline, depth = time.monotonic() + 5, {}
            while depth != {queue: 2} and time.monotonic() < deadline:
                depth = depth_of(metrics.QueueDepth(url, [queue]))
            assert depth == {queue: 2}
        finally:
            simple.queue.delete()
            simple.close()


def test_exposition_adds_the_scrape_time_collectors_after_the_process_metrics():
    queue = f"{settings.SPOOL.broker.queue}-empty"
    text = metrics.exposition(metrics.QueueDepth(settings.SPOOL.broker.redis_url, [queue])).decode()
    assert "# TYPE spool_jobs_created_total counter" in text
    assert f'spool_queue_depth{{queue="{queue}"}} 0.0' in text


def test_a_reader_counts_as_waiting_only_while_inside():
    def waiting() -> float:
        return CollectorRegistry.get_sample_value(metrics.REGISTRY, "spool_readers_waiting") or 0.0

    before = waiting()
    with metrics.reader_waiting():
        assert waiting() == before + 1
    assert waiting() == before


def test_reaping_drops_the_live_gauges_of_dead_processes_and_keeps_their_counters(tmp_path, monkeypatch):
    monkeypatch.setattr(metrics, "MULTIPROC_DIR", str(tmp_path))
    dead = 2**22 + 1  # above the largest pid_max Linux allows: no process has it
    files = [f"gauge_liveall_{dead}.db", f"gauge_livesum_{dead}.db", f"counter_{dead}.db"]
    files.append(f"gauge_liveall_{os.getpid()}.db")
    for name in files:
        (tmp_path / name).write_bytes(b"")
    metrics.reap_dead_processes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"counter_{dead}.db", f"gauge_liveall_{os.getpid()}.db"]
    )


def backend_errors(backend: str) -> float:
    return metrics.REGISTRY.get_sample_value("spool_backend_errors_total", {"backend": backend}) or 0.0


def test_an_outage_a_web_request_meets_is_counted_by_backend():
    request = RequestFactory().get("/v1/jobs/x")
    before = backend_errors("redis"), backend_errors("postgres")
    assert error_response(request, redis.ConnectionError("refused")).status_code == 503
    assert error_response(request, OperationalError("gone")).status_code == 503
    assert (backend_errors("redis"), backend_errors("postgres")) == (before[0] + 1, before[1] + 1)


def test_an_overloaded_pool_is_not_counted_as_a_backend_error():
    before = backend_errors("redis")
    assert error_response(RequestFactory().get("/v1/jobs/x"), RedisPoolExhausted(2)).status_code == 503
    assert backend_errors("redis") == before


def test_an_outage_the_worker_waits_out_is_counted_once_per_failed_try():
    failures = [redis.ConnectionError("refused"), OperationalError("gone")]

    def finish() -> str:
        if failures:
            raise failures.pop(0)
        return "committed"

    before = backend_errors("redis"), backend_errors("postgres")
    assert runner._retry_while_down(finish, "the test's write") == "committed"
    assert (backend_errors("redis"), backend_errors("postgres")) == (before[0] + 1, before[1] + 1)
