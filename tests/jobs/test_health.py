"""/healthz answers while the process does; /readyz names whichever of Postgres, Redis and the
broker does not answer, against real servers that are really stopped."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from django.test import RequestFactory, override_settings

from harness.processes import free_port
from jobs import health
from tests.brokers import AMQP_URL, require_rabbitmq
from tests.faults import OwnRedis
from tests.spoolenv import spool_read

pytestmark = pytest.mark.django_db  # the probe connects to the test database, not the real one


def probe(view) -> tuple[int, dict]:
    response = asyncio.run(view(RequestFactory().get("/")))
    return response.status_code, json.loads(response.content)


def test_healthz_answers_ok():
    assert probe(health.healthz) == (200, {"status": "ok"})


def test_readyz_is_ok_when_everything_answers():
    status, body = probe(health.readyz)
    assert (status, body["failed"]) == (200, []), body
    assert body["checks"] == {"postgres": "ok", "redis": "ok", "broker": "ok"}


def test_readyz_names_redis_once_it_is_stopped():
    own = OwnRedis()
    own.start()
    try:
        # The broker stays on the suite's Redis, so only the stopped one may be named.
        with override_settings(SPOOL=spool_read(SPOOL_CHUNKLOG_REDIS_URL=own.url)):
            assert probe(health.readyz)[0] == 200
            own.kill()
            status, body = probe(health.readyz)
    finally:
        own.kill()
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["failed"] == ["redis"]
    assert "onnect" in body["checks"]["redis"]  # "ConnectionError: ... connecting to 127.0.0.1:port"


def test_readyz_pings_every_node_of_a_redis_cluster(spool_env, redis_cluster):
    spool_env(SPOOL_CHUNKLOG_REDIS_URL=redis_cluster.url)
    spool_env(SPOOL_CHUNKLOG_REDIS_CLUSTER=True)
    assert probe(health.readyz)[0] == 200
    node = redis_cluster.nodes[2]  # not the one the URL names: discovery still finds it
    node.kill()
    try:
        status, body = probe(health.readyz)
    finally:
        redis_cluster.restart(node)
    assert (status, body["failed"]) == (503, ["redis"])


def test_readyz_names_postgres_when_it_does_not_answer(settings, monkeypatch):
    monkeypatch.setitem(settings.DATABASES["default"], "PORT", str(free_port()))
    status, body = probe(health.readyz)
    assert (status, body["failed"]) == (503, ["postgres"])
    assert "OperationalError" in body["checks"]["postgres"]


def test_readyz_gives_up_on_a_server_that_accepts_and_never_answers(spool_env):
    # A listening socket nobody reads: the TCP connect succeeds, the PING reply never comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        spool_env(SPOOL_CHUNKLOG_REDIS_URL=f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        spool_env(SPOOL_READY_TIMEOUT_SECONDS=0.5)
        status, body = probe(health.readyz)
    assert (status, body["failed"]) == (503, ["redis"])


def test_readyz_names_an_unreachable_rabbitmq_broker(spool_env):
    spool_env(CELERY_BROKER_URL=f"amqp://guest:guest@127.0.0.1:{free_port()}//")
    status, body = probe(health.readyz)
    assert (status, body["failed"]) == (503, ["broker"])


def test_readyz_reaches_a_rabbitmq_broker(spool_env):
    require_rabbitmq()
    spool_env(CELERY_BROKER_URL=AMQP_URL)
    status, body = probe(health.readyz)
    assert (status, body["checks"]["broker"]) == (200, "ok"), body
