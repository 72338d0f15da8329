"""The shapes of /v1/webhook_endpoints: OpenAI's (so its SDK's `client.webhooks` works), with
Spool's fields beside them (description, enabled, disabled_reason, failing_since) and its
delivery log."""

from __future__ import annotations

from rest_framework import serializers

from jobs.faces.common.pagination import ListPage
from jobs.faces.common.serializers import StrictBooleanField, StrictCharField
from jobs.webhooks.events import EVENT_TYPES

MAX_URL = 2000
MAX_TEXT = 500


def _event_types(required: bool | None = None) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPES),
        min_length=1,
        max_length=len(EVENT_TYPES),
        help_text="The event types sent to it.",
        required=required,
    )


# ---- requests ---------------------------------------------------------------------------------


class EndpointCreate(serializers.Serializer):
    url = StrictCharField(max_length=MAX_URL, help_text="http(s) URL of a public address.")
    event_types = _event_types()
    name = StrictCharField(max_length=MAX_TEXT, required=False, allow_blank=True)
    description = StrictCharField(
        max_length=MAX_TEXT, required=False, allow_blank=True, help_text="Same as name."
    )


class EndpointUpdate(serializers.Serializer):
    url = StrictCharField(max_length=MAX_URL, required=False)
    event_types = _event_types(required=False)
    name = StrictCharField(max_length=MAX_TEXT, required=False, allow_blank=True)
    description = StrictCharField(max_length=MAX_TEXT, required=False, allow_blank=True)
    enabled = StrictBooleanField(required=False, help_text="false disables it; true enables it again.")


class RotateSecret(serializers.Serializer):
    keep_old_secret_active_for_24_hours = StrictBooleanField(required=False)


# ---- answers ----------------------------------------------------------------------------------


class Endpoint(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.ChoiceField(choices=["webhook_endpoint"])
    url = serializers.CharField()
    event_types = serializers.ListField(child=serializers.CharField())
    name = serializers.CharField()
    description = serializers.CharField()
    created_at = serializers.IntegerField()
    updated_at = serializers.IntegerField()
    signing_secret_hint = serializers.CharField(allow_null=True)
    enabled = serializers.BooleanField()
    disabled_reason = serializers.CharField(
        allow_null=True, help_text="Why it is disabled (by its owner or by Spool)."
    )
    failing_since = serializers.IntegerField(allow_null=True, help_text="Since when every attempt failed.")


class EndpointWithSecret(Endpoint):
    signing_secret = serializers.CharField(help_text="whsec_...: shown here only, at creation or rotation.")


class EndpointList(ListPage):
    # A field named as Serializer.data, which it shadows: the wire shape's name.
    data = Endpoint(many=True)  # type: ignore[assignment]


class EndpointDeleted(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.ChoiceField(choices=["webhook_endpoint.deleted"])
    deleted = serializers.BooleanField()


class Attempt(serializers.Serializer):
    number = serializers.IntegerField()
    started_at = serializers.FloatField(help_text="Unix time.")
    status_code = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_null=True)


class Delivery(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.ChoiceField(choices=["webhook_delivery"])
    webhook_endpoint_id = serializers.CharField()
    event_id = serializers.CharField(help_text="The webhook-id header of every attempt.")
    event_type = serializers.CharField()
    job_id = serializers.UUIDField(allow_null=True)
    status = serializers.ChoiceField(choices=["pending", "delivered", "failed"])
    created_at = serializers.IntegerField()
    finished_at = serializers.IntegerField(allow_null=True)
    next_attempt_at = serializers.IntegerField(allow_null=True)
    payload = serializers.DictField(help_text="The event, as sent.")
    attempts = Attempt(many=True)


class DeliveryList(ListPage):
    # A field named as Serializer.data, which it shadows: the wire shape's name.
    data = Delivery(many=True)  # type: ignore[assignment]
