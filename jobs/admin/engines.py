"""Admin for engines, API keys and rooms: secrets are written, never shown back."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from jobs.keys import hash_secret, new_key_pair
from jobs.models import ApiKey, Engine, Room, RoomMessage


class EngineForm(forms.ModelForm):
    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Upstream API key. Leave empty to keep the stored one.",
    )

    class Meta:
        model = Engine
        fields = ["name", "kind", "config", "secret", "is_active"]

    def clean_secret(self) -> str:
        return self.cleaned_data["secret"] or (self.instance.secret if self.instance.pk else "")


@admin.register(Engine)
class EngineAdmin(admin.ModelAdmin):
    form = EngineForm
    list_display = ["name", "kind", "id", "is_active", "has_secret", "created_at"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "id"]

    @admin.display(boolean=True, description="API key set")
    def has_secret(self, engine: Engine) -> bool:
        return bool(engine.secret)


class ApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["owner", "name"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ["access_key", "owner", "name", "created_at", "revoked_at"]
    list_filter = ["revoked_at"]
    list_select_related = ["owner"]
    search_fields = ["access_key", "owner__username", "name"]
    autocomplete_fields = ["owner"]
    actions = ["revoke"]
    # The hash is not the secret, but it is nothing a person needs either.
    exclude = ["secret_hash"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[str]:
        return ["owner", "access_key", "created_at"] if obj else []

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[Any]:
        return ["owner", "name", "access_key", "created_at", "revoked_at"] if obj else ["owner", "name"]

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if not change:
            access, secret = new_key_pair()
            obj.access_key, obj.secret_hash = access, hash_secret(secret)
            # Only this request's response may show it: see response_add.
            request._spool_new_secret = secret  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)

    def response_add(
        self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None
    ) -> HttpResponse:
        # Rendered instead of a redirect, so the secret travels in this one response and is never
        # put in a cookie or session as a flash message would be.
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "key": obj,
            "secret": request._spool_new_secret,  # type: ignore[attr-defined]
            "title": "API key created",
        }
        return TemplateResponse(request, "admin/jobs/apikey/created.html", context)

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        count = queryset.filter(revoked_at=None).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} API key(s).", messages.SUCCESS)


class RoomMessageInline(admin.TabularInline):
    model = RoomMessage
    extra = 0
    readonly_fields = ["role", "content", "tool_calls", "job", "created_at"]
    can_delete = False


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "created_at"]
    list_select_related = ["owner"]
    show_full_result_count = False
    inlines = [RoomMessageInline]
