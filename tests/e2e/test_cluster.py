"""The chunk log on a 3-master Redis Cluster: one master restarted (empty) mid-stream, and what a
job's keys look like there. The face suites' tests marked `cluster` run on it too."""

from __future__ import annotations

import time

import pytest
from django.conf import settings

from tests.e2e.helpers import NO_EOT, Frontend
from tests.e2e.test_infra_faults import assert_read_once, read_across_an_outage

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]


def test_all_keys_of_a_job_live_on_the_one_master_that_serves_its_slot(cluster_spool, redis_cluster):
    client = Frontend(cluster_spool, cluster_spool.alice)
    job_id = client.submit(cluster_spool.engine_id, "where do I live", {"max_completion_tokens": 10})
    client.stream(job_id)
    client.post("/engine/partial", jobId=job_id)  # a text cursor too

    home = redis_cluster.node_of(f"{{{job_id}}}")
    found = {
        node.port: [k.decode() for k in redis_cluster.node_client(node).scan_iter(match=f"*{{{job_id}}}*")]
        for node in redis_cluster.nodes
    }
    kinds = {k.split("}:", 1)[1].split(":", 1)[0] for k in found[home.port]}
    assert {"chunks", "text", "handed"} <= kinds  # (and the heartbeat while it has not expired)
    assert all(not keys for port, keys in found.items() if port != home.port)


def test_a_master_restarted_mid_stream_loses_nothing(cluster_spool, redis_cluster, pg):
    """SIGKILL the master that holds the job's slot and start it again without its data: pollers
    get 503 in the face's shape meanwhile, never a 500; the worker keeps its chunks, writes the
    whole log back on that master (same sequence numbers) and stores the result."""
    client = Frontend(cluster_spool, cluster_spool.alice)
    # 900 tokens at 150 tok/s: about 6 s, so the generation runs on after the master is back.
    job_id = client.submit(
        cluster_spool.engine_id, "through the storm", {"max_completion_tokens": 900, **NO_EOT}
    )
    home = redis_cluster.node_of(f"{{{job_id}}}")
    messages, statuses = read_across_an_outage(client, job_id, home.kill, lambda: redis_cluster.restart(home))
    job = assert_read_once(
        cluster_spool, job_id, messages, statuses, tokens=900, figures="cluster-master-restart"
    )

    # The worker wrote the whole log back on the restarted master, same sequence numbers.
    home_client = redis_cluster.node_client(home)
    chunks = f"{settings.SPOOL.redis.prefix}:job:{{{job_id}}}:chunks"
    deadline = time.monotonic() + 30
    while home_client.llen(chunks) < len(job.chunks) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert home_client.llen(chunks) == len(job.chunks)
