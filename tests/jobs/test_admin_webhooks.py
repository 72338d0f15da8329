"""Webhooks in the admin: a signing secret is shown once, at creation or rotation; private
addresses are refused; deliveries show their attempts and can be sent again."""

from __future__ import annotations

import re

import pytest

from engine.types import GenerationRequest
from jobs import services
from jobs.webhooks import delivery, endpoints, secrets
from jobs.webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def loopback_allowed(spool_env):
    spool_env(SPOOL_WEBHOOK_ALLOWED_NETWORKS=["127.0.0.0/8"])


def add(admin_client, url: str):
    owner = services.user_ensure(username="ann")
    return admin_client.post(
        "/admin/jobs/webhookendpoint/add/",
        {
            "owner": owner.pk,
            "url": url,
            "event_types": ["job.succeeded"],
            "description": "ci",
            "enabled": "on",
        },
    )


def test_an_endpoints_secret_is_shown_once_at_creation_and_never_again(admin_client):
    created = add(admin_client, "http://127.0.0.1:9/hook")
    assert created.status_code == 200
    secret = re.search(r'id="spool-webhook-secret">([^<]+)<', created.content.decode()).group(1)
    endpoint = WebhookEndpoint.objects.get()
    assert secrets.decrypt(endpoint.secret_encrypted) == secret
    for url in ("/admin/jobs/webhookendpoint/", f"/admin/jobs/webhookendpoint/{endpoint.pk}/change/"):
        body = admin_client.get(url).content.decode()
        assert secret not in body and endpoint.secret_encrypted not in body

    rotated = admin_client.post(
        "/admin/jobs/webhookendpoint/",
        {"action": "rotate_secret", "index": "0", "_selected_action": [endpoint.pk]},
    )
    new = re.search(r'id="spool-webhook-secret">([^<]+)<', rotated.content.decode()).group(1)
    endpoint.refresh_from_db()
    assert new != secret and secrets.decrypt(endpoint.secret_encrypted) == new


def test_a_private_address_is_refused_in_the_admin_too(admin_client, spool_env):
    spool_env(SPOOL_WEBHOOK_ALLOWED_NETWORKS=[])
    response = add(admin_client, "http://10.0.0.8/hook")
    assert response.status_code == 200  # the form again, with the error
    assert "a private address" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_send_again_queues_a_delivery_and_its_page_shows_the_attempts(
    admin_client, monkeypatch, redis_clean, django_capture_on_commit_callbacks
):
    sent: list[tuple[str, int]] = []
    monkeypatch.setattr(delivery, "_enqueue", lambda d, n, countdown=0.0: sent.append((d, n)))
    owner = services.user_ensure(username="ann")
    endpoints.endpoint_create(owner=owner, url="http://127.0.0.1:9/hook", event_types=["job.cancelled"])
    job = services.job_create(
        owner=owner,
        engine=services.engine_ensure_offline(),
        request=GenerationRequest(messages=[{"role": "user", "content": "x"}]),
        options={},
        face="jobs",
    )
    services.job_cancel(job.pk)
    made = WebhookDelivery.objects.get()
    made.attempts.create(
        number=1, started_at=made.created_at, status_code=503, latency_ms=12, error="answered 503"
    )
    WebhookDelivery.objects.filter(pk=made.pk).update(status="failed", attempt_count=1)

    page = admin_client.get(f"/admin/jobs/webhookdelivery/{made.pk}/change/").content.decode()
    assert "answered 503" in page and made.event_id in page
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            "/admin/jobs/webhookdelivery/",
            {"action": "send_again", "index": "0", "_selected_action": [made.pk]},
        )
    made.refresh_from_db()
    assert made.status == WebhookDelivery.Status.PENDING
    assert sent == [(str(made.pk), 2)]
