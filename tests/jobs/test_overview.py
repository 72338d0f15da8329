"""The admin overview: the last 24 hours read from the rollup, and the figures of this moment, on
the admin index through Django's test client."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import metrics, overview
from jobs.models import Job
from tests.jobs.test_rollup import ended_job, engine, queued_job

pytestmark = pytest.mark.django_db(transaction=True)  # the rollup's trigger runs at commit


@pytest.fixture
def day():
    """Jobs on two engines over the last 24 hours, and one from before them."""
    fast, slow = engine("fast"), engine("slow")
    now = timezone.now()
    for minutes in (2, 2, 90):
        ended_job(
            fast,
            status="succeeded",
            ended=now - timedelta(minutes=minutes),
            ttft_ms=300,
            input_tokens=10,
            output_tokens=4,
        )
    ended_job(slow, status="succeeded", ended=now - timedelta(hours=5), ttft_ms=2100, output_tokens=50)
    ended_job(slow, status="failed", ended=now - timedelta(hours=5), ttft_ms=None, code="upstream_timeout")
    ended_job(fast, status="cancelled", ended=now - timedelta(minutes=3), ttft_ms=None, code="cancelled")
    ended_job(fast, status="failed", ended=now - timedelta(hours=25), ttft_ms=None, code="too_old")
    return now


def test_the_last_24_hours_count_each_ended_job_once_by_status_code_and_engine(day):
    summary = overview.last_24_hours()

    assert summary.ended == 6
    assert {status: sum(counts) for status, counts in summary.per_minute.items()} == {
        "succeeded": 4, "failed": 1, "cancelled": 1,
    }  # fmt: skip
    assert len(summary.per_minute["succeeded"]) == 24 * 60
    assert [(e.status, e.code, e.jobs, e.share) for e in summary.errors] == [
        ("cancelled", "cancelled", 1, 1 / 6),
        ("failed", "upstream_timeout", 1, 1 / 6),
    ]
    assert [(t.engine, t.input_tokens, t.output_tokens) for t in summary.tokens] == [
        ("slow", 0, 50), ("fast", 30, 12),
    ]  # fmt: skip
    with_tokens = [b for b in summary.ttft if b.jobs]
    assert [b.jobs for b in with_tokens] == [1, 1, 2]  # 5 h ago, 90 min ago, 2 min ago
    assert 2000 <= with_tokens[0].p50_ms < 2500 and 300 <= with_tokens[-1].p95_ms < 400
    assert all(b.start.minute % 15 == 0 for b in summary.ttft)


def figure(body: str, name: str) -> str:
    found = re.search(
        rf'data-figure="{name}"[^>]*><dt>[^<]*</dt><dd class="spool-figure-value">([^<]*)<', body
    )
    assert found, f"no {name} figure"
    return found.group(1)


def test_the_admin_index_is_the_overview_with_charts_tables_and_live_figures(admin_client, day, settings):
    queued_job(engine("busy"))
    Job.objects.filter(pk=queued_job(engine("busier")).pk).update(status=Job.Status.RUNNING)

    with metrics.reader_waiting():  # a long-poll waiting in this (the web) process
        body = admin_client.get("/admin/").content.decode()

    for chart in ("jobs", "ttft", "tokens", "errors"):
        assert f'id="spool-chart-{chart}"' in body and f'id="spool-table-{chart}"' in body
    assert '<title id="spool-chart-jobs-title">Jobs ended per minute, by final status</title>' in body
    assert "6 jobs ended" in body
    assert (figure(body, "queued"), figure(body, "running"), figure(body, "readers")) == ("1", "1", "1")
    assert re.search(rf'data-queue="{settings.SPOOL.broker.queue}"', body)  # asked of the broker
    assert "upstream_timeout" in body and "too_old" not in body
    assert "Stored completions" in body  # the models are still listed below


def test_a_broker_that_does_not_answer_shows_as_such_not_as_an_empty_queue(admin_client, spool_env):
    spool_env(CELERY_BROKER_URL="redis://127.0.0.1:9/0")  # nothing listens on the discard port
    body = admin_client.get("/admin/").content.decode()
    assert "the broker did not answer" in body and "data-queue=" not in body


def test_the_overview_is_for_staff_only(client):
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
