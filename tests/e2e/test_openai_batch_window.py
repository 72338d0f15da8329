"""A Batch API Spool with a short completion window (SPOOL_BATCH_WINDOW_SECONDS) and small
files (SPOOL_FILE_MAX_BYTES): expiry keeps what finished and reports the rest expired; a file too
large is refused; a batch's end is a webhook event the SDK unwraps."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator

import openai
import pytest

from harness.webhook_receiver import Receiver, running_receiver
from tests.e2e import openai_helpers
from tests.e2e.batch_helpers import chat_line, read_lines, run, wait
from tests.e2e.openai_helpers import NO_EOT, OFFLINE
from tests.servers import Spool, running_spool

pytestmark = pytest.mark.e2e

WINDOW = 5
MAX_BYTES = 4096


@pytest.fixture(scope="module")
def spool(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Spool]:
    with running_spool(
        django_db_blocker,
        tmp_path_factory.mktemp("batch-window-logs"),
        SPOOL_BATCH_WINDOW_SECONDS=str(WINDOW),
        SPOOL_FILE_MAX_BYTES=str(MAX_BYTES),
        SPOOL_WEBHOOK_BACKOFF_SECONDS="0.2",
    ) as running:
        yield running
    from jobs.webhooks.models import WebhookEndpoint

    with django_db_blocker.unblock():
        WebhookEndpoint.objects.all().delete()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


def test_lines_not_done_when_the_window_closes_are_reported_expired(spool, receiver):
    client = openai_helpers.client(spool)
    secret = client.webhooks.create(  # type: ignore[attr-defined]
        url=receiver.url("/batches"), event_types=["batch.expired", "batch.completed"], name="batches"
    ).signing_secret
    # Quick lines, then lines far longer than the window (1,500 tokens at 150 a second).
    quick = [chat_line(f"quick-{i}", OFFLINE, max_completion_tokens=1) for i in range(5)]
    slow = [chat_line(f"slow-{i}", OFFLINE, max_completion_tokens=1500, logit_bias=NO_EOT) for i in range(5)]
    batch = run(client, quick + slow)
    assert batch.expires_at is not None and batch.expires_at - batch.created_at == WINDOW

    done = wait(client, batch.id)

    assert done.status == "expired" and done.expired_at
    answers, errors = read_lines(client, done.output_file_id), read_lines(client, done.error_file_id)
    assert Counter(a["custom_id"] for a in answers + errors) == Counter(x["custom_id"] for x in quick + slow)
    assert {a["custom_id"] for a in answers} == {x["custom_id"] for x in quick}
    assert all(e["error"]["code"] == "batch_expired" and e["response"] is None for e in errors)
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (5, 5)

    [got] = receiver.wait_for("/batches", lambda r: len(r) >= 1)
    event = openai.OpenAI(api_key="unused", webhook_secret=secret).webhooks.unwrap(got.body, got.headers)
    assert isinstance(event, openai.types.webhooks.BatchExpiredWebhookEvent)
    assert event.data.id == batch.id


def test_a_file_past_the_size_limit_is_refused(spool):
    client = openai_helpers.client(spool)
    with pytest.raises(openai.APIStatusError) as refused:
        client.files.create(file=("big.jsonl", io.BytesIO(b"x" * (MAX_BYTES + 1))), purpose="batch")
    assert refused.value.status_code == 413
    assert refused.value.body["code"] == "file_too_large"  # type: ignore[index]
    assert "big.jsonl" not in [f.filename for f in client.files.list()]
