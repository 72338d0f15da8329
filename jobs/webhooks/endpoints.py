"""Writes and reads of an owner's webhook endpoints and their deliveries (the API's and the
admin's); a secret leaves here only when it is made."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from jobs.paging import Page, keyset_page, pk_of
from jobs.webhooks import addresses, secrets
from jobs.webhooks.delivery import resend
from jobs.webhooks.models import WebhookDelivery, WebhookEndpoint

ENDPOINT_PREFIX, DELIVERY_PREFIX = "we_", "wd_"
# How long a rotated-out secret keeps signing (OpenAI's keep_old_secret_active_for_24_hours).
OLD_SECRET_GRACE = timedelta(hours=24)
DISABLED_BY_OWNER = "Disabled by its owner."


def endpoint_create(
    *, owner: User, url: str, event_types: list[str], name: str = "", description: str = ""
) -> tuple[WebhookEndpoint, str]:
    """The endpoint and its signing secret, which is not shown again. Raises RefusedAddress."""
    addresses.check_url(url)
    secret = secrets.new_secret()
    endpoint = WebhookEndpoint.objects.create(
        owner=owner,
        url=url,
        event_types=event_types,
        description=description or name,
        secret_encrypted=secrets.encrypt(secret),
    )
    return endpoint, secret


def endpoint_update(*, endpoint: WebhookEndpoint, changes: dict[str, Any]) -> WebhookEndpoint:
    """Applies url, event_types, description (or name) and enabled. Re-enabling clears the
    reason and the failure clock. Raises RefusedAddress for a new url."""
    if "url" in changes and changes["url"] != endpoint.url:
        addresses.check_url(changes["url"])
        endpoint.url = changes["url"]
    if "event_types" in changes:
        endpoint.event_types = changes["event_types"]
    for field in ("name", "description"):
        if field in changes:
            endpoint.description = changes[field]
    if "enabled" in changes and changes["enabled"] != endpoint.enabled:
        endpoint.enabled = changes["enabled"]
        endpoint.disabled_reason = "" if endpoint.enabled else DISABLED_BY_OWNER
        endpoint.failing_since = None
    endpoint.updated_at = timezone.now()
    endpoint.save()
    return endpoint


def endpoint_rotate_secret(*, endpoint: WebhookEndpoint, keep_old_for: timedelta | None = None) -> str:
    """A new secret (shown once); the old one keeps signing for keep_old_for, if given."""
    secret = secrets.new_secret()
    if keep_old_for:
        endpoint.previous_secret_encrypted = endpoint.secret_encrypted
        endpoint.previous_secret_expires_at = timezone.now() + keep_old_for
    else:
        endpoint.previous_secret_encrypted, endpoint.previous_secret_expires_at = "", None
    endpoint.secret_encrypted = secrets.encrypt(secret)
    endpoint.updated_at = timezone.now()
    endpoint.save()
    return secret


def endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    endpoint.delete()  # its deliveries and their attempts go with it


def secret_hint(endpoint: WebhookEndpoint) -> str | None:
    try:
        return secrets.hint(secrets.decrypt(endpoint.secret_encrypted))
    except Exception:  # encrypted under a secret key no longer configured: rotate it
        return None


# -- reads ---------------------------------------------------------------------------------------


def endpoint_for_owner(public: str, owner_id: int) -> WebhookEndpoint | None:
    pk = pk_of(ENDPOINT_PREFIX, public)
    return None if pk is None else WebhookEndpoint.objects.filter(id=pk, owner_id=owner_id).first()


def delivery_of(endpoint: WebhookEndpoint, public: str) -> WebhookDelivery | None:
    pk = pk_of(DELIVERY_PREFIX, public)
    return None if pk is None else endpoint.deliveries.filter(id=pk).first()


def endpoint_page(owner_id: int, *, after: str | None, limit: int, order: str) -> Page:
    return keyset_page(
        WebhookEndpoint.objects.filter(owner_id=owner_id),
        ENDPOINT_PREFIX,
        after=after,
        limit=limit,
        order=order,
    )


def delivery_page(endpoint: WebhookEndpoint, *, after: str | None, limit: int, order: str) -> Page:
    query = endpoint.deliveries.prefetch_related("attempts")
    return keyset_page(query, DELIVERY_PREFIX, after=after, limit=limit, order=order)


@transaction.atomic
def delivery_resend(*, delivery: WebhookDelivery) -> WebhookDelivery:
    resend(delivery)
    return WebhookDelivery.objects.prefetch_related("attempts").get(id=delivery.pk)
