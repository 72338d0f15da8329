"""Webhook endpoints, the deliveries of events to them and every attempt made: what Postgres keeps
so that a delivery survives a worker's death and operators can see what was sent."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class WebhookEndpoint(models.Model):
    """A URL an owner registered to be told when their jobs end; it sees only that owner's jobs."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.URLField(max_length=2000)
    # The event types it wants (jobs.webhooks.events.EVENT_TYPES).
    event_types = models.JSONField(default=list)
    description = models.CharField(max_length=500, blank=True)
    # The signing secret, encrypted with a key derived from SECRET_KEY (jobs.webhooks.secrets):
    # Spool needs it back to sign, so it cannot be hashed; a database dump alone does not reveal it.
    secret_encrypted = models.TextField(editable=False)
    # After a rotation that keeps the old secret for a while, deliveries carry a signature with
    # each, so receivers can switch over without dropping a message.
    previous_secret_encrypted = models.TextField(blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=500, blank=True)
    # Since when every attempt has failed (None: the last one succeeded, or none was made).
    failing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The last change of its configuration or secret (OpenAI's updated_at).
    updated_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["owner", "created_at", "id"], name="webhook_owner_created")]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One event for one endpoint: written in the same transaction that ends the job, so it is
    delivered at least once even if the process dies right after the commit."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    # The event's id: the `webhook-id` header of every attempt, so receivers can drop repeats.
    event_id = models.CharField(max_length=64)
    event_type = models.CharField(max_length=64)
    job = models.ForeignKey("jobs.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # The event object ({"id", "object", "type", "created_at", "data"}), sent as is.
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # Attempts made (or started): a task carries the number it expects to make, and only the
    # one that moves this from n-1 to n goes on, so a duplicated task message sends nothing twice.
    attempt_count = models.PositiveIntegerField(default=0)
    # When the next attempt is due (or, while one runs, when it will surely have ended); the
    # sweeper sends again a pending delivery left past it, whose task message was lost.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Retries go on for SPOOL_WEBHOOK_RETRY_FOR_SECONDS from here: the event, or a "send again".
    retrying_since = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["endpoint", "created_at", "id"], name="webhookdelivery_endpoint"),
            models.Index(
                fields=["next_attempt_at"],
                name="webhookdelivery_due",
                condition=models.Q(status="pending"),
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event_id"], name="webhookdelivery_once"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


class WebhookAttempt(models.Model):
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    # Why it failed: a timeout, a refused address, a connection error, or the answer's status.
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["delivery", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
