"""Admin for webhook endpoints and their delivery log: a new endpoint's signing secret is shown
once, at creation (or rotation); deliveries show every attempt and can be sent again."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from jobs.webhooks import addresses, delivery, endpoints, secrets
from jobs.webhooks.events import EVENT_TYPES
from jobs.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


class EndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        choices=[(t, t) for t in EVENT_TYPES], widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["owner", "url", "event_types", "description", "enabled", "disabled_reason"]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            addresses.check_url(url)
        except addresses.RefusedAddress as exc:
            raise ValidationError(str(exc)) from None
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = [
        "url",
        "owner",
        "description",
        "enabled",
        "failing_since",
        "disabled_reason",
        "created_at",
    ]
    list_filter = ["enabled"]
    list_select_related = ["owner"]
    search_fields = ["url", "owner__username", "description"]
    autocomplete_fields = ["owner"]
    readonly_fields = ["failing_since", "created_at", "updated_at"]
    actions = ["rotate_secret"]

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool) -> None:
        if change and "enabled" in form.changed_data:
            # As through the API: enabling starts afresh; disabling says who did it.
            obj.failing_since = None
            if obj.enabled:
                obj.disabled_reason = ""
            elif not obj.disabled_reason:
                obj.disabled_reason = "Disabled by an operator."
        if not change:
            secret = secrets.new_secret()
            obj.secret_encrypted = secrets.encrypt(secret)
            # Only this request's response may show it: see response_add.
            request._spool_new_secret = secret  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)

    def _show_secret(self, request: HttpRequest, endpoint: WebhookEndpoint, secret: str) -> HttpResponse:
        # Rendered instead of a redirect, so the secret travels in this one response only.
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "endpoint": endpoint,
            "secret": secret,
            "title": "Webhook signing secret",
        }
        return TemplateResponse(request, "admin/jobs/webhookendpoint/secret.html", context)

    def response_add(
        self, request: HttpRequest, obj: WebhookEndpoint, post_url_continue: str | None = None
    ) -> HttpResponse:
        return self._show_secret(request, obj, request._spool_new_secret)  # type: ignore[attr-defined]

    @admin.action(description="Rotate the signing secret (the old one stops at once)")
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(
                request, "Rotate one endpoint at a time: its secret is shown once.", messages.ERROR
            )
            return None
        endpoint = queryset.get()
        return self._show_secret(request, endpoint, endpoints.endpoint_rotate_secret(endpoint=endpoint))


class AttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    fields = ["number", "started_at", "status_code", "latency_ms", "error"]
    readonly_fields = fields  # type: ignore[assignment]  # the same names, all plain strings
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "event_type",
        "event_id",
        "endpoint",
        "status",
        "attempt_count",
        "created_at",
        "next_attempt_at",
    ]
    list_filter = ["status", "event_type"]
    list_select_related = ["endpoint"]
    search_fields = ["event_id", "=job__id", "endpoint__url"]
    show_full_result_count = False
    readonly_fields = [
        "endpoint",
        "event_id",
        "event_type",
        "job",
        "payload",
        "status",
        "attempt_count",
        "created_at",
        "retrying_since",
        "next_attempt_at",
        "finished_at",
    ]
    inlines = [AttemptInline]
    actions = ["send_again"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Send again (same event id, a new day of retries)")
    def send_again(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        chosen = list(queryset)
        for chosen_delivery in chosen:
            delivery.resend(chosen_delivery)
        self.message_user(request, f"Sending {len(chosen)} delivery(ies) again.", messages.SUCCESS)
