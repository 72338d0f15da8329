"""Admin for engines, API keys and rooms: secrets are written, never shown back. An engine's
limits and a key's priority cap and weight (jobs/scheduling/) are edited here; the engine list
shows each limited engine's live queue."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from jobs import capacity
from jobs.keys import hash_secret, new_key_pair
from jobs.models import ApiKey, Deployment, Engine, Room, RoomMessage


class EngineForm(forms.ModelForm):
    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Upstream API key. Leave empty to keep the stored one.",
    )

    class Meta:
        model = Engine
        fields = ["name", "kind", "config", "secret", "is_active", *capacity.LIMIT_FIELDS]

    def clean_secret(self) -> str:
        return self.cleaned_data["secret"] or (self.instance.secret if self.instance.pk else "")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for field in capacity.LIMIT_FIELDS:
            # 0 means no limit to the scheduler as empty does; stored as empty, so the page
            # and the list say "no limit" rather than "0".
            if cleaned.get(field) == 0:
                cleaned[field] = None
        return cleaned


class EngineChangeList(ChangeList):
    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        # Each limited engine's queue, read from Redis once for this page (not once per column).
        found = capacity.queues(self.result_list)
        for engine in self.result_list:
            engine.queue = found.get(engine.pk)


class DeploymentInline(admin.TabularInline):
    """An engine's upstream servers. Their API keys are set with `manage.py spool_engine
    deployment ... --api-key` and never shown here."""

    model = Deployment
    fields = ["name", "base_url", "weight", "max_concurrency", "is_active", "has_secret"]
    readonly_fields = ["has_secret"]
    extra = 0

    @admin.display(boolean=True, description="API key set")
    def has_secret(self, deployment: Deployment) -> bool:
        return bool(deployment.secret)


@admin.register(Engine)
class EngineAdmin(admin.ModelAdmin):
    form = EngineForm
    inlines = [DeploymentInline]
    list_display = [
        "name", "kind", "id", "is_active", "has_secret", "limits", "waiting", "slots", "stopped",
        "created_at",
    ]  # fmt: skip
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "id"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "config", "secret", "is_active", "fallback"]}),
        (
            "Capacity",
            {
                "fields": list(capacity.LIMIT_FIELDS),
                "description": "What the upstream can take, held across every worker. With none set, "
                "jobs go to the workers at once; with any, they wait in the engine's queue in "
                "priority order, fairly between owners. 0 or empty: no limit.",
            },
        ),
    ]

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return EngineChangeList

    @admin.display(boolean=True, description="API key set")
    def has_secret(self, engine: Engine) -> bool:
        return bool(engine.secret)

    @admin.display(description="limits")
    def limits(self, engine: Engine) -> str:
        return capacity.limits_text(engine)

    def _queue(self, engine: Engine) -> Any:
        # Set by EngineChangeList on the rows of the page; absent for an engine without limits.
        return getattr(engine, "queue", None)

    @admin.display(description="waiting")
    def waiting(self, engine: Engine) -> str:
        if not engine.is_limited:
            return "-"
        status = self._queue(engine)
        return capacity.waiting_text(status) if status else capacity.UNAVAILABLE

    @admin.display(description="slots")
    def slots(self, engine: Engine) -> str:
        if not engine.is_limited:
            return "-"
        status = self._queue(engine)
        return capacity.slots_text(engine, status) if status else capacity.UNAVAILABLE

    @admin.display(description="admissions stopped")
    def stopped(self, engine: Engine) -> str:
        if not engine.is_limited:
            return "-"
        status = self._queue(engine)
        return capacity.reason_text(status) if status else capacity.UNAVAILABLE


class ApiKeyForm(forms.ModelForm):
    """The key's limits as choices: engines by name (stored by id), faces as checkboxes."""

    engines = forms.ModelMultipleChoiceField(
        queryset=Engine.objects.all(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The engines it may use; none ticked: every engine.",
    )
    faces = forms.MultipleChoiceField(
        choices=ApiKey.Face.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The faces it may call; none ticked: every face.",
    )

    class Meta:
        model = ApiKey
        fields = ["owner", "name", "expires_at", "revoked_at", "engines", "faces", "max_priority", "weight"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["engines"] = list(self.instance.engines)

    def clean_weight(self) -> int:
        weight = self.cleaned_data["weight"]
        if weight < 1:
            # The scheduler advances an owner's turn by 1/weight: 0 would stop it for good.
            raise forms.ValidationError("A weight is at least 1.")
        return int(weight)

    def clean_engines(self) -> list[Any]:
        chosen = [engine.pk for engine in self.cleaned_data["engines"]]
        if self.instance.pk and self.instance.engines:
            # Ids of engines deleted since stay: the form cannot show them, and dropping the last
            # of them would turn a limited key into one that may use every engine.
            existing = set(Engine.objects.filter(pk__in=self.instance.engines).values_list("pk", flat=True))
            chosen += [pk for pk in self.instance.engines if pk not in existing]
        return chosen


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = [
        "access_key", "owner", "name", "state", "expires_at", "last_used_at", "engine_limit", "face_limit",
        "max_priority", "weight", "created_at",
    ]  # fmt: skip
    list_filter = ["revoked_at", "expires_at", "last_used_at", "max_priority"]
    list_select_related = ["owner"]
    search_fields = ["access_key", "owner__username", "name"]
    autocomplete_fields = ["owner"]
    actions = ["revoke"]
    # The hash is not the secret, but it is nothing a person needs either.
    exclude = ["secret_hash"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[str]:
        return ["owner", "access_key", "created_at", "last_used_at"] if obj else []

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[Any]:
        limits = ["expires_at", "engines", "faces", "max_priority", "weight"]
        if obj is None:
            return ["owner", "name", *limits]
        return ["owner", "name", "access_key", "created_at", "last_used_at", "revoked_at", *limits]

    @admin.display(description="state")
    def state(self, key: ApiKey) -> str:
        if key.revoked_at is not None:
            return "revoked"
        if key.expires_at is not None and key.expires_at <= timezone.now():
            return "expired"
        return "active"

    @admin.display(description="engines")
    def engine_limit(self, key: ApiKey) -> str:
        if not key.engines:
            return "all"
        names = dict(Engine.objects.filter(pk__in=key.engines).values_list("pk", "name"))
        return ", ".join(names.get(pk, f"{pk} (deleted)") for pk in key.engines)

    @admin.display(description="faces")
    def face_limit(self, key: ApiKey) -> str:
        return ", ".join(key.faces) or "all"

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
