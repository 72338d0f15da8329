"""A batch whose worker is SIGKILLed and whose web is restarted mid-way: its output and error
files hold every custom_id exactly once (each line is started once, with its job, in one
transaction; another worker takes the batch up once its steps go silent)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from harness.processes import stop_groups
from tests.e2e import openai_helpers
from tests.e2e.batch_helpers import chat_line, read_lines, run, wait
from tests.e2e.openai_helpers import NO_EOT, OFFLINE
from tests.servers import Spool, running_spool

pytestmark = pytest.mark.e2e

LINES = 60


@pytest.fixture(scope="module")
def fragile(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Spool]:
    with running_spool(
        django_db_blocker,
        tmp_path_factory.mktemp("batch-restart-logs"),
        SPOOL_HEARTBEAT_TTL_SECONDS="2",
        SPOOL_SWEEP_EVERY_SECONDS="0.5",
        SPOOL_REQUEUE_AFTER_SECONDS="3",
        SPOOL_BATCH_STALE_SECONDS="3",
        # Lines start ten at a time, so the kill comes between chunks and inside one.
        SPOOL_BATCH_ACTIVE_LINES="10",
    ) as running:
        yield running


def test_a_killed_worker_and_a_restarted_web_lose_and_repeat_no_line(fragile, pg):
    from jobs.models import BatchLine

    client = openai_helpers.client(fragile)
    items = [chat_line(f"k{i}", OFFLINE, max_completion_tokens=100, logit_bias=NO_EOT) for i in range(LINES)]
    batch = run(client, items)
    wait(client, batch.id, until={"in_progress"})
    deadline = time.monotonic() + 60
    while (counts := client.batches.retrieve(batch.id).request_counts) is None or counts.completed < 10:
        assert time.monotonic() < deadline, "no line finished within 60 s"
        time.sleep(0.1)
    assert client.batches.retrieve(batch.id).status == "in_progress"  # the kill comes mid-batch

    fragile.processes.kill_worker()
    stop_groups([fragile.processes.web])
    fragile.processes.start_worker()
    fragile.processes.start_web()
    client = openai_helpers.client(fragile)
    done = wait(client, batch.id, timeout=180)

    assert done.status == "completed"
    answers, errors = read_lines(client, done.output_file_id), read_lines(client, done.error_file_id)
    assert Counter(a["custom_id"] for a in answers + errors) == Counter(f"k{i}" for i in range(LINES))
    lines = BatchLine.objects.filter(batch_id=batch.id.removeprefix("batch_"))
    assert lines.count() == LINES
    assert lines.values("job_id").distinct().count() == LINES
