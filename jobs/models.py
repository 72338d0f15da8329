"""Engines, API keys, rooms, jobs and stored completions: what Postgres keeps as the source of truth."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import F
from django.utils import timezone

from engine.registry import cached_engine
from jobs.search import Pairs


class Engine(models.Model):
    class Kind(models.TextChoices):
        OFFLINE = "offline", "Built-in offline n-gram model"
        OPENAI = "openai", "OpenAI-compatible upstream"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    config = models.JSONField(default=dict, blank=True, help_text="Kind-specific settings; no secrets.")
    # Kept out of `config` so no form or API that shows the config can show it back.
    secret = models.CharField(max_length=500, blank=True, help_text="Upstream API key; never shown.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # What the engine's upstream can take, held across every worker (jobs/scheduling/). Empty:
    # no limit; an engine with none set is sent to the workers at once, as if there were no
    # scheduler.
    max_concurrency = models.PositiveIntegerField(
        null=True, blank=True, help_text="Jobs running on it at once, across every worker; empty: no limit."
    )
    requests_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Jobs started per minute; empty: no limit."
    )
    tokens_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Tokens per minute (prompt and max tokens estimated at the start, corrected by "
        "the usage at the end); empty: no limit.",
    )

    fallback = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The engine that takes a job this one failed before its first chunk (every "
        "deployment tried); its own fallback may take it next, never an engine it already tried.",
    )
    # Kept by Deployment's signals (jobs/scheduling/deployments.py): whether jobs are placed on
    # deployments, read without a query wherever the engine row is at hand.
    has_deployments = models.BooleanField(default=False, editable=False)

    class Meta:
        ordering = ["name"]

    @property
    def is_limited(self) -> bool:
        """Whether its jobs go through its queue (jobs/scheduling/): it has a limit, or
        deployments to place them on."""
        limits = self.max_concurrency or self.requests_per_minute or self.tokens_per_minute
        return bool(limits or self.has_deployments)

    @classmethod
    def limited(cls) -> models.QuerySet[Engine]:
        """The engines with a queue of their own (jobs/scheduling/)."""
        return cls.objects.filter(
            models.Q(max_concurrency__gt=0)
            | models.Q(requests_per_minute__gt=0)
            | models.Q(tokens_per_minute__gt=0)
            | models.Q(has_deployments=True)
        )

    def __str__(self) -> str:
        return self.name

    def engine_config(self) -> dict:
        config = dict(self.config)
        if self.secret:
            config["api_key"] = self.secret
        return config

    def built(self) -> Any:
        """The engine object, built once per process and configuration (engine.registry)."""
        return cached_engine(str(self.pk), self.kind, self.engine_config())


class Deployment(models.Model):
    """One of an engine's upstream servers (an engine of kind openai): its own base URL, key and
    capacity. A job of the engine is placed on a deployment with room, in proportion to their
    weights; one that fails before its first chunk cools its deployment down and is tried on
    another (jobs/scheduling/)."""

    engine = models.ForeignKey(Engine, on_delete=models.CASCADE, related_name="deployments")
    name = models.CharField(max_length=100)
    base_url = models.CharField(max_length=500, help_text="The server's OpenAI-compatible /v1 URL.")
    secret = models.CharField(max_length=500, blank=True, help_text="Its API key; never shown.")
    weight = models.PositiveIntegerField(default=1, help_text="Its share of the engine's jobs.")
    max_concurrency = models.PositiveIntegerField(
        null=True, blank=True, help_text="Jobs on it at once; empty: no limit of its own."
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["engine", "name"]
        constraints = [models.UniqueConstraint(fields=["engine", "name"], name="deployment_engine_name")]

    def __str__(self) -> str:
        return f"{self.engine.name}/{self.name}"

    def engine_config(self) -> dict:
        """The engine's configuration with this server in place of the engine's own."""
        config = {**self.engine.engine_config(), "base_url": self.base_url}
        if self.secret:
            config["api_key"] = self.secret
        return config


class ApiKey(models.Model):
    """An access/secret key pair. Only a SHA-256 of the secret is stored: secrets are 32 random
    bytes, so a fast hash is safe and lets a Bearer token be looked up by its hash.

    A key may expire, be revoked, and be limited to some engines and some faces; an empty list
    means every one. Engines are kept by id, not as a relation: deleting an engine then leaves
    its id in the list, matching nothing, so a limited key never widens to every engine."""

    class Face(models.TextChoices):
        SEMOSS = "semoss", "SEMOSS (/Monolith/api)"
        OPENAI = "openai", "OpenAI (/v1)"
        NATIVE = "native", "Native jobs (/v1/jobs)"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    access_key = models.CharField(max_length=64, unique=True)
    secret_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Refused from then on; empty: never.")
    engines = ArrayField(
        models.UUIDField(), default=list, blank=True, help_text="Engine ids it may use; empty: every engine."
    )
    faces = ArrayField(
        models.CharField(max_length=16, choices=Face.choices),
        default=list,
        blank=True,
        help_text="Faces it may call; empty: every face.",
    )
    # Scheduling (jobs/scheduling/): the highest class its jobs may ask for (a request above it
    # runs at this class, and says so), and its owner's share against other owners.
    max_priority = models.CharField(
        max_length=16,
        choices=[(c, c) for c in ("interactive", "default", "batch")],
        default="interactive",
        help_text="The highest priority class its jobs may ask for.",
    )
    weight = models.PositiveIntegerField(
        default=1,
        help_text="Share of each engine's capacity against other owners' jobs of the same class "
        "(an owner of weight 2 starts two jobs for each one of an owner of weight 1).",
    )
    # Written at most once a minute (jobs/faces/common/auth.py says why).
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    def __str__(self) -> str:
        return f"{self.access_key} ({self.owner})"


class Room(models.Model):
    """A conversation (SEMOSS roomId); its messages carry history between LLM calls."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="rooms")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return str(self.id)


class RoomMessage(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    job = models.ForeignKey("Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    role = models.CharField(max_length=16)
    content = models.TextField(blank=True)
    tool_calls = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]


class Job(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs")
    engine = models.ForeignKey(Engine, on_delete=models.PROTECT, related_name="jobs")
    room = models.ForeignKey(Room, on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs")
    face = models.CharField(max_length=16, default="semoss")
    request = models.JSONField()
    # Face-level options the engine never sees: stream, store, metadata.
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # Set when the row is built rather than when it is inserted: a job's create writes its live
    # meta, which carries it, to Redis first (services._job_write).
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    first_chunk_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    finish_reason = models.CharField(max_length=32, blank=True)
    usage = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    # {"choices": [{"content", "tool_calls", "thinking", "finish_reason"}], "usage": {...}}
    result = models.JSONField(null=True, blank=True)
    # The whole chunk log, archived once when the job ends, so every face answers the same
    # after the Redis copy expires.
    chunks = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            models.Index(fields=["status", "created_at"]),
            # The admin's list of every owner's jobs, newest first (docs/DASHBOARD.md).
            models.Index(fields=["created_at", "id"], name="job_created"),
        ]

    def __str__(self) -> str:
        return str(self.id)

    @property
    def is_finished(self) -> bool:
        return self.status in self.TERMINAL


class IdempotencyKey(models.Model):
    """A client's Idempotency-Key and the job it made (jobs/idempotency.py)."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # A SHA-256 of what the request asked for: the same key with another request is a conflict.
    fingerprint = models.CharField(max_length=64)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, null=True, related_name="+")
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "key"], name="idempotency_owner_key")]


class JobMinute(models.Model):
    """Jobs that ended in one minute on one engine with one outcome: what the admin overview's
    charts read. Kept by a database trigger on Job (jobs/rollup.py); never written from Python."""

    minute = models.DateTimeField()
    engine = models.ForeignKey(Engine, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=16, choices=Job.Status.choices)
    # A failed or cancelled job's finish_reason ("upstream_timeout", "cancelled"...); "" on success.
    code = models.CharField(max_length=32, blank=True)
    jobs = models.PositiveIntegerField()
    ttft_jobs = models.PositiveIntegerField(help_text="Jobs that sent a first chunk.")
    ttft_ms_sum = models.BigIntegerField()
    # Counts per time-to-first-token bucket; the bounds are jobs.rollup.BUCKETS_MS.
    ttft_buckets = ArrayField(models.PositiveIntegerField())
    input_tokens = models.BigIntegerField()
    output_tokens = models.BigIntegerField()

    class Meta:
        constraints = [
            # The trigger's upsert key; its leading minute serves the overview's 24-hour range.
            models.UniqueConstraint(fields=["minute", "engine", "status", "code"], name="jobminute_key"),
        ]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} {self.engine_id} {self.status} {self.code}"


class StoredCompletionManager(models.Manager["StoredCompletion"]):
    def get_queryset(self) -> models.QuerySet[StoredCompletion]:
        # The search vector is as large as the text it indexes; nothing reads it back.
        return super().get_queryset().defer("search")


class StoredCompletion(models.Model):
    """A finished job kept as an OpenAI stored chat completion (`store: true`, from any face).

    The id is derived from the job id, so the streamed chunks, the non-stream answer and this
    row all carry the same "chatcmpl-..." id.
    """

    id = models.CharField(primary_key=True, max_length=64, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="stored_completions"
    )
    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="stored_completion")
    engine = models.ForeignKey(
        Engine, on_delete=models.SET_NULL, null=True, blank=True, related_name="stored_completions"
    )
    model = models.CharField(max_length=100, help_text="The engine's name when the job ran.")
    face = models.CharField(max_length=16)
    metadata = models.JSONField(default=dict, blank=True)
    # {"messages": [...], "params": {...}}: what the client asked for.
    request = models.JSONField()
    # The chat.completion object, exactly as GET /v1/chat/completions/{id} returns it.
    response = models.JSONField()
    usage = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Job.Status.choices)
    finish_reason = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(help_text="When the request came in (the job's creation).")
    first_token_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Request to first chunk.")
    duration_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Request to end.")
    # What was said, as a tsvector: kept by a database trigger on every write of request or
    # response (jobs/search.py); never set from Python.
    search = SearchVectorField(null=True, editable=False)

    objects = StoredCompletionManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Listing pages walk (created_at, id) within one owner, in either order.
            models.Index(fields=["owner", "created_at", "id"], name="storedcmpl_owner_created"),
            models.Index(fields=["owner", "model", "created_at"], name="storedcmpl_owner_model"),
            # The admin lists every owner's rows newest first; without it each page sorts the
            # table (or every row a filter matches): ~0.8 s at 1M rows (docs/DASHBOARD.md).
            models.Index(fields=["created_at", "id"], name="storedcmpl_created"),
            # metadata[key]=value filters are JSONB containment (@>), which jsonb_path_ops serves.
            GinIndex(fields=["metadata"], name="storedcmpl_metadata", opclasses=["jsonb_path_ops"]),
            # Full-text search: `search @@ websearch_to_tsquery(...)` (jobs/search.py).
            GinIndex(fields=["search"], name="storedcmpl_search"),
            # Phrases: which rows have two lexemes side by side, which the index above cannot
            # tell; built concurrently by migration 0009, which also creates the function.
            GinIndex(Pairs(F("search")), name="storedcmpl_search_pairs"),
        ]

    def __str__(self) -> str:
        return self.id


class StoredResponse(models.Model):
    """A response of the Responses API (`store: true`, the default), kept once its job ends.

    The id is the job's ("resp_" + its hex), so the stream, the retrieve and this row agree. The
    response object itself is rendered from the job's archived chunk log (jobs.responses.events);
    this row keeps what the dashboard, its filters and retention need (the input items stay in
    the job's options).
    Deleting it deletes the response (its job stays, as a stored completion's does)."""

    id = models.CharField(primary_key=True, max_length=64, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="stored_responses"
    )
    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="stored_response")
    engine = models.ForeignKey(
        Engine, on_delete=models.SET_NULL, null=True, blank=True, related_name="stored_responses"
    )
    model = models.CharField(max_length=100, help_text="The engine's name when the job ran.")
    metadata = models.JSONField(default=dict, blank=True)
    # The response object as it ended (what the dashboard shows; the API renders the job's log).
    response = models.JSONField()
    usage = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=16)
    created_at = models.DateTimeField(help_text="When the request came in (the job's creation).")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "created_at", "id"], name="storedresp_owner_created"),
            # The dashboard's newest-first list and the retention sweep walk created_at.
            models.Index(fields=["created_at", "id"], name="storedresp_created"),
            GinIndex(fields=["metadata"], name="storedresp_metadata", opclasses=["jsonb_path_ops"]),
        ]

    def __str__(self) -> str:
        return self.id


# The webhook and batch models live beside the code that uses them; imported here so that
# Django registers them with this app.
from jobs.batches.models import Batch, BatchLine, File  # noqa: E402, F401
from jobs.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint  # noqa: E402, F401
