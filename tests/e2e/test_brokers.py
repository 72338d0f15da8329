"""A generation that outlives the Redis transport's visibility timeout: with Redis as the broker
its task is delivered again while it runs and the runner's row-count claim makes the second
delivery a no-op; with RabbitMQ it is delivered once. Either way it runs once."""

from __future__ import annotations

import pytest

from tests.brokers import BROKERS, deliveries, skipped_deliveries, spool_on
from tests.e2e.helpers import NO_EOT, Frontend, messages_of, text_of

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=BROKERS)
def short_visibility(request, django_db_setup, django_db_blocker, tmp_path_factory):
    """A Spool whose Redis transport gives a message back after 2 s unacknowledged, looking for
    such messages every second; INFO logs, where Celery names each delivery."""
    with spool_on(
        request.param,
        django_db_blocker,
        tmp_path_factory.mktemp(f"visibility-{request.param}-logs"),
        SPOOL_BROKER_VISIBILITY_TIMEOUT_SECONDS="2",
        SPOOL_BROKER_RESTORE_EVERY_SECONDS="1",
        SPOOL_LOG_LEVEL="INFO",
    ) as running:
        yield request.param, running


def test_a_generation_longer_than_the_visibility_timeout_runs_once(short_visibility, pg):
    from jobs.models import Job

    broker, spool = short_visibility
    client = Frontend(spool, spool.alice)
    # 900 tokens at the suite's 150 tok/s: about 6 s, three visibility timeouts.
    job_id = client.submit(spool.engine_id, "a long one", {"max_completion_tokens": 900, **NO_EOT})
    messages = messages_of(client.stream(job_id, timeout=120))

    finishes = [m for m in messages if "finish_reason" in m["data"]]
    assert finishes == [messages[-1]] and messages[-1]["data"]["finish_reason"] == "length"
    job = Job.objects.get(pk=job_id)
    assert job.status == Job.Status.SUCCEEDED and job.usage["output_tokens"] == 900
    assert text_of(messages) == job.result["choices"][0]["content"]
    received = deliveries(spool)
    if broker == "redis":
        # Given back while it ran, received again, and skipped by the claim every extra time.
        assert received >= 2
        assert skipped_deliveries(spool, job_id) == received - 1
    else:
        assert received == 1
        assert skipped_deliveries(spool, job_id) == 0
