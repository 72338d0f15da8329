"""A chunk-log Redis whose mode is not the configured one (a cluster node without
SPOOL_CHUNKLOG_REDIS_CLUSTER, or the flag on a plain Redis) is named, with the setting to change:
web and worker refuse to start, and /readyz says the same. Against a real Redis Cluster."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness.processes import ROOT, free_port
from jobs import health, redis_topology
from tests.jobs.test_health import probe

pytestmark = [pytest.mark.django_db, pytest.mark.cluster]

CLUSTER_OFF = "set SPOOL_CHUNKLOG_REDIS_CLUSTER=1"
CLUSTER_ON = "unset SPOOL_CHUNKLOG_REDIS_CLUSTER"


def test_a_cluster_node_without_the_cluster_setting_fails_the_startup_check(spool_env, redis_cluster):
    spool_env(SPOOL_CHUNKLOG_REDIS_URL=redis_cluster.url)
    spool_env(SPOOL_CHUNKLOG_REDIS_CLUSTER=False)
    [error] = redis_topology.startup_check()
    assert error.id == "spool.E001"
    assert CLUSTER_OFF in error.msg


def test_the_cluster_setting_on_a_plain_redis_fails_the_startup_check(spool_env):
    spool_env(SPOOL_CHUNKLOG_REDIS_CLUSTER=True)
    [error] = redis_topology.startup_check()
    assert CLUSTER_ON in error.msg


def test_matching_settings_and_an_unreachable_redis_pass_the_startup_check(spool_env, redis_cluster):
    assert redis_topology.startup_check() == []  # the suite's own single Redis
    spool_env(SPOOL_CHUNKLOG_REDIS_URL=redis_cluster.url)
    spool_env(SPOOL_CHUNKLOG_REDIS_CLUSTER=True)
    assert redis_topology.startup_check() == []
    spool_env(SPOOL_CHUNKLOG_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens
    assert redis_topology.startup_check() == []  # it starts, and /readyz names Redis


def test_readyz_names_the_setting_for_a_cluster_node_without_it(spool_env, redis_cluster):
    spool_env(SPOOL_CHUNKLOG_REDIS_URL=redis_cluster.url)
    spool_env(SPOOL_CHUNKLOG_REDIS_CLUSTER=False)
    status, body = probe(health.readyz)
    assert (status, body["failed"]) == (503, ["redis"])
    assert CLUSTER_OFF in body["checks"]["redis"]


@pytest.mark.parametrize("script", ["web.sh", "worker.sh"])
def test_web_and_worker_refuse_to_start_on_a_cluster_node_without_the_setting(redis_cluster, script):
    env = {
        **os.environ,
        "SPOOL_PYTHON": sys.executable,
        "SPOOL_CHUNKLOG_REDIS_URL": redis_cluster.url,
        "SPOOL_CHUNKLOG_REDIS_CLUSTER": "0",
        "PORT": str(free_port()),
        "SPOOL_METRICS_DIR": os.environ.get("TMPDIR", "/tmp") + "/spool-topology-test",
    }
    # Bounded: a script that did start would serve until killed, which the timeout turns into
    # a failure of this test rather than a hang.
    done = subprocess.run(
        ["bash", f"scripts/{script}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert CLUSTER_OFF in done.stderr
