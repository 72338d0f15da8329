"""Batches in the admin: listed with their progress, and cancelled from there as over the API."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from jobs import services
from jobs.batches.models import Batch

pytestmark = pytest.mark.django_db


def a_batch(**fields) -> Batch:
    owner = services.user_ensure(username="batcher")
    values = {"endpoint": "/v1/chat/completions", "input_file_id": "00000000-0000-0000-0000-000000000001"}
    return Batch.objects.create(
        owner=owner, expires_at=timezone.now() + dt.timedelta(hours=24), **values | fields
    )


def test_the_batch_list_shows_progress(admin_client):
    a_batch(status=Batch.Status.IN_PROGRESS, total=10, completed=6, failed=1)
    page = admin_client.get("/admin/jobs/batch/").content.decode()
    assert "7 of 10 (6 completed, 1 failed)" in page


def test_the_cancel_action_cancels_a_running_batch(admin_client):
    batch = a_batch(status=Batch.Status.IN_PROGRESS, total=3)
    admin_client.post(
        "/admin/jobs/batch/", {"action": "cancel", "index": "0", "_selected_action": [batch.pk]}
    )
    batch.refresh_from_db()
    assert batch.status in (Batch.Status.CANCELLING, Batch.Status.CANCELLED)
