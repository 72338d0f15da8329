"""The one settings module; every deployment knob is an environment variable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypedDict

from django.core.exceptions import ImproperlyConfigured
from kombu import Queue
from pythonjsonlogger.core import RESERVED_ATTRS

from config.env import database_from_url, env_bool, env_float, env_int, env_origins, env_str, secret_key

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = secret_key(
    "DJANGO_SECRET_KEY",
    debug=DEBUG,
    fallback_file=Path(env_str("SPOOL_SECRET_KEY_FILE", str(BASE_DIR / "run" / "secret-key"))),
)
# Earlier secret keys, comma-separated: what they signed or encrypted (sessions, webhook signing
# secrets) still opens while it is replaced.
SECRET_KEY_FALLBACKS = [key for key in env_str("DJANGO_SECRET_KEY_FALLBACKS", "").split(",") if key.strip()]
ALLOWED_HOSTS = env_str("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver").split(",")

INSTALLED_APPS = [
    "jobs.apps.SpoolAdminConfig",  # django.contrib.admin, with the overview as its index
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served offline
    "corsheaders",
    "jobs",
]

# Django's stock middleware and WhiteNoise run on the event loop under ASGI (jobs/compat/onloop.py says
# why that is safe): no thread hop per hook on every request.
MIDDLEWARE = [
    # First, so that every line of a request that names a job carries its id (jobs/logcontext.py).
    "jobs.logcontext.job_log_middleware",
    # Outside everything that may answer (the face errors below, CommonMiddleware's redirects), so
    # those answers carry the CORS headers too and a page can read them; it runs on the loop.
    "corsheaders.middleware.CorsMiddleware",
    "jobs.middleware.FaceErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "jobs.compat.onloop.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": database_from_url("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/spool")}
if env_str("SPOOL_TEST_DATABASE", ""):
    DATABASES["default"]["TEST"] = {"NAME": env_str("SPOOL_TEST_DATABASE", "")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Signed-cookie sessions: the SEMOSS login cookie costs no database write per client.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
SESSION_COOKIE_HTTPONLY = True

# The production profile: Spool behind a TLS-terminating proxy that sets X-Forwarded-Proto.
# Under it `manage.py check --deploy` reports nothing (tests/test_deploy_settings.py).
SPOOL_HTTPS = env_bool("SPOOL_HTTPS", False)
if SPOOL_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    # Probes and scrapes come over plain HTTP from inside the cluster, not through the proxy.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SPOOL_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SPOOL_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SPOOL_HSTS_PRELOAD", True)

# Browser pages on other origins (django-cors-headers): the origins allowed to call the API faces,
# comma-separated (https://app.example.com,http://localhost:3000); none by default. No cookies
# cross origins (keys and read tokens are sent explicitly), so credentials stay off.
CORS_ALLOWED_ORIGINS = env_origins("SPOOL_CORS_ALLOWED_ORIGINS")
CORS_URLS_REGEX = r"^/(v1|Monolith/api)/"
CORS_ALLOW_CREDENTIALS = False
# A reconnecting EventSource sends Last-Event-ID; a fetch may send a key, and place its job
# (jobs/faces/common/placement.py).
CORS_ALLOW_HEADERS = [
    "accept", "authorization", "content-type", "last-event-id", "idempotency-key", "x-spool-queue-timeout",
    "x-spool-run-timeout",
]  # fmt: skip
CORS_EXPOSE_HEADERS = ["retry-after", "x-spool-job-id", "location", "idempotent-replayed"]
CORS_PREFLIGHT_MAX_AGE = 600

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
# DRF is the request pipeline of every API face (jobs/faces/common); views set their own
# authentication, throttle and parsers, and errors go through one handler.
REST_FRAMEWORK = {
    "EXCEPTION_HANDLER": "jobs.faces.common.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_SCHEMA_CLASS": "jobs.faces.common.schema.FaceSchema",
}
# The OpenAPI documents are generated from the faces' serializers and views (drf-spectacular);
# each document view keeps its own face's routes (jobs/faces/common/schema.py).
SPECTACULAR_SETTINGS = {
    "TITLE": "Spool",
    "DESCRIPTION": "LLM generations as asynchronous jobs.",
    "VERSION": "1.0.0",
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    # No badge from the public validator: the docs pages fetch nothing from outside Spool.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_GENERATE_CHOICE_DESCRIPTION": False,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "jobs.faces.openai.responses.shapes.link_operations",
        "jobs.faces.openai.batch_serializers.link_operations",
    ],
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "jobs.faces.openai.serializers.STATUSES",
        "SemossStatusEnum": "jobs.faces.semoss.serializers.STATUSES",
        # The `object` of each OpenAI-style answer is a constant: one name each.
        "ListObjectEnum": ["list"],
        "JobObjectEnum": ["job"],
        "FileObjectEnum": ["file"],
        # A batch's `object` and an upload's `purpose`: the one choice set, so one name.
        "BatchEnum": ["batch"],
        "FilePurposeEnum": "jobs.faces.openai.batch_serializers.PURPOSES",
        "ChatCompletionObjectEnum": ["chat.completion"],
        "ChatCompletionDeletedObjectEnum": ["chat.completion.deleted"],
        "ModelObjectEnum": ["model"],
        "ResponseObjectEnum": ["response"],
        "ResponseStatusEnum": "jobs.faces.openai.responses.shapes.STATUSES",
        "WebhookEndpointObjectEnum": ["webhook_endpoint"],
        "WebhookEndpointDeletedObjectEnum": ["webhook_endpoint.deleted"],
        "WebhookDeliveryObjectEnum": ["webhook_delivery"],
        "ReadTokenObjectEnum": ["job.read_token"],
        "EmbeddingsObjectEnum": ["embeddings"],
        "EmbeddingObjectEnum": ["embedding"],
        "TextCompletionObjectEnum": ["text_completion"],
        # The `event` of an SSE event: the native stream's kinds, and OpenAI's single "message".
        "JobEventEnum": ["chunk", "error", "result", "done"],
        "MessageEventEnum": ["message"],
    },
}

STATIC_URL = "static/"
# WhiteNoise serves the admin's, the playground's and the API docs' files from the apps' own
# directories (no collectstatic step before `make run`); it indexes them once at start. A
# deployment that runs collectstatic sets SPOOL_STATIC_ROOT, and WhiteNoise serves that too.
STATIC_ROOT = env_str("SPOOL_STATIC_ROOT", "") or None
WHITENOISE_USE_FINDERS = True

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
# Spool's own Redis (chunk logs, wake-ups, abuse-limit counters): REDIS_URL unless it is set. It
# can be a Redis Cluster (SPOOL_CHUNKLOG_REDIS_CLUSTER=1, the URL names any one node): every key
# of a job carries a {<job id>} hash tag, so each job lives on one shard. Redis 7 or later: the
# wake-ups are sharded pub/sub (SPUBLISH/SSUBSCRIBE), on one node as on a cluster.
CHUNKLOG_REDIS_URL = env_str("SPOOL_CHUNKLOG_REDIS_URL", REDIS_URL)
CHUNKLOG_REDIS_CLUSTER = env_bool("SPOOL_CHUNKLOG_REDIS_CLUSTER", False)

# Largest request body accepted (bytes); a larger one gets 413 in the face's shape.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("SPOOL_MAX_BODY_BYTES", 1024 * 1024)

# Uploads (POST /v1/files): a file part larger than this goes to a temporary file on disk as it
# arrives, not to memory; JSON bodies stay under it (SPOOL_MAX_BODY_BYTES), as before.
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE

# Where Spool keeps what it writes to disk: the Batch API's files (input and output JSONL) under
# files/, unless SPOOL_FILES_STORAGE names another Django storage backend (django-storages' S3
# backend, for one), configured by SPOOL_FILES_STORAGE_OPTIONS (a JSON object of its options).
SPOOL_DATA_DIR = Path(env_str("SPOOL_DATA_DIR", str(BASE_DIR / "run" / "data")))
_FILES_BACKEND = env_str("SPOOL_FILES_STORAGE", "django.core.files.storage.FileSystemStorage")
_FILES_OPTIONS = json.loads(env_str("SPOOL_FILES_STORAGE_OPTIONS", "") or "{}")
if _FILES_BACKEND == "django.core.files.storage.FileSystemStorage":
    _FILES_OPTIONS = {"location": str(SPOOL_DATA_DIR / "files"), **_FILES_OPTIONS}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "spool_files": {"BACKEND": _FILES_BACKEND, "OPTIONS": _FILES_OPTIONS},
}

# Celery, read by config/celery.py under the CELERY_ namespace.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_TASK_DEFAULT_QUEUE = env_str("SPOOL_CELERY_QUEUE", "celery")
CELERY_TASK_IGNORE_RESULT = True  # results live in Postgres, not in a result backend
# A job is acknowledged only once it has run, so a worker killed mid-job does not lose it;
# the runner's row-count guard keeps a redelivered job from running twice.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Generations are long and I/O-bound: take one message per free thread, not a batch that
# could sit behind a slow generation.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Remote control (celery inspect/control) is off: with a task in flight, kombu's pidbox channel
# crashes the whole worker when the Redis broker restarts ("'NoneType' object has no attribute
# 'hostname'"); without it the worker reconnects and the running generations carry on.
CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
# Redis transport only: a message taken by a worker that then died comes back after
# visibility_timeout. Long generations may outlive it and be delivered twice; the runner's row
# guard makes the second delivery a no-op (tests/e2e/test_brokers.py). RabbitMQ redelivers only
# when the consumer's connection closes, never on a timer, so with it a long generation is
# delivered once (README: which broker when).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("SPOOL_BROKER_VISIBILITY_TIMEOUT_SECONDS", 300),
    # How often a worker looks for messages unacknowledged past that timeout: kombu's default
    # (a sweep every 10th call, 10 s apart), expressed as one period a test can shorten.
    "unacked_restore_interval": env_int("SPOOL_BROKER_RESTORE_EVERY_SECONDS", 100),
    "unacked_restore_throttle": 1,
}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# Webhook deliveries (jobs/webhooks/) go to a queue of their own beside the jobs' queue, so a
# backlog of retries never waits in line ahead of generations (nor the reverse). Workers started
# without -Q consume both; `-Q <queue>-webhooks` makes a worker that only delivers.
SPOOL_WEBHOOK_QUEUE = f"{CELERY_TASK_DEFAULT_QUEUE}-webhooks"
# Jobs of class batch on an engine without limits (those of a limited engine wait in its queue,
# where the scheduler orders them) go to a queue of their own, so interactive and default jobs
# never wait behind a backlog of Batch API lines: a worker takes from its queues in turn, so a
# job of the main queue waits for at most one batch job per free slot.
SPOOL_BATCH_QUEUE = f"{CELERY_TASK_DEFAULT_QUEUE}-batch"
CELERY_TASK_QUEUES = [Queue(CELERY_TASK_DEFAULT_QUEUE), Queue(SPOOL_BATCH_QUEUE), Queue(SPOOL_WEBHOOK_QUEUE)]
CELERY_TASK_ROUTES = {"spool.deliver_webhook": {"queue": SPOOL_WEBHOOK_QUEUE}}


class SpoolSettings(TypedDict):
    """The shape of SPOOL below, so that each knob has its type where code reads it."""

    REDIS_PREFIX: str
    CHUNK_LOG_TTL_SECONDS: int
    RESPONSES_RETENTION_DAYS: int
    ROLLUP_RETENTION_DAYS: int
    JOB_RETENTION_DAYS: int
    WEBHOOK_DELIVERY_RETENTION_DAYS: int
    REDIS_MAX_CONNECTIONS: int
    REDIS_POOL_TIMEOUT_SECONDS: float
    LONG_POLL_SECONDS: float
    SYNC_WAIT_SECONDS: float
    REQUESTS_PER_MINUTE: int
    JOBS_PER_MINUTE: int
    MAX_ACTIVE_JOBS: int
    MAX_MESSAGES: int
    MAX_OUTPUT_TOKENS: int
    KEY_CACHE_SECONDS: float
    READ_TOKEN_SECONDS: int
    READ_TOKEN_MAX_SECONDS: int
    OFFLINE_TOKENS_PER_SECOND: float
    SEARCH_CONFIG: str


SPOOL: SpoolSettings = {
    # Key prefix of every Redis key Spool writes, so several deployments can share one Redis.
    "REDIS_PREFIX": env_str("SPOOL_REDIS_PREFIX", "spool"),
    # How long a job's live chunk log stays in Redis after its last write; Postgres answers after.
    "CHUNK_LOG_TTL_SECONDS": env_int("SPOOL_CHUNK_LOG_TTL_SECONDS", 3600),
    # How long a stored response (POST /v1/responses, store: true) is kept; `manage.py
    # spool_purge_responses` deletes older ones (run it daily from cron or a CronJob).
    "RESPONSES_RETENTION_DAYS": env_int("SPOOL_RESPONSES_RETENTION_DAYS", 30),
    # How long the admin overview's per-minute rollup rows are kept (its charts read 24 hours);
    # `manage.py spool_purge_rollup` deletes older ones (daily, beside the one above).
    "ROLLUP_RETENTION_DAYS": env_int("SPOOL_ROLLUP_RETENTION_DAYS", 30),
    # How long an ended job (its row, with the archived chunk log: ~2.8 KB each) and a finished
    # webhook delivery (with its attempts) are kept; 0 keeps them for ever. A job is a handle
    # clients read within minutes (its live log lasts an hour); what an owner means to keep is a
    # stored completion or response, and their jobs stay while they do (jobs/retention.py).
    "JOB_RETENTION_DAYS": env_int("SPOOL_JOB_RETENTION_DAYS", 30),
    "WEBHOOK_DELIVERY_RETENTION_DAYS": env_int("SPOOL_WEBHOOK_DELIVERY_RETENTION_DAYS", 30),
    # Redis connections per pool (one pool per process and event loop). A caller that finds them
    # all busy waits up to REDIS_POOL_TIMEOUT_SECONDS, then gets a 503 that says "overloaded".
    # Sized from measurement: see docs/RELIABILITY.md (500 concurrent clients, one web process).
    "REDIS_MAX_CONNECTIONS": env_int("SPOOL_REDIS_MAX_CONNECTIONS", 32),
    "REDIS_POOL_TIMEOUT_SECONDS": env_float("SPOOL_REDIS_POOL_TIMEOUT_SECONDS", 10.0),
    # How long a poll with nothing new waits for the next chunk before answering empty.
    "LONG_POLL_SECONDS": env_float("SPOOL_LONG_POLL_SECONDS", 1.0),
    # How long a synchronous runPixel LLM call waits for its job to end.
    "SYNC_WAIT_SECONDS": env_float("SPOOL_SYNC_WAIT_SECONDS", 600.0),
    # Abuse limits per caller (0 turns one off). Polls count as requests: a client streaming
    # fast tokens polls often, so the request limit is generous; job starts are the costly part.
    "REQUESTS_PER_MINUTE": env_int("SPOOL_REQUESTS_PER_MINUTE", 12000),
    "JOBS_PER_MINUTE": env_int("SPOOL_JOBS_PER_MINUTE", 600),
    "MAX_ACTIVE_JOBS": env_int("SPOOL_MAX_ACTIVE_JOBS", 200),
    "MAX_MESSAGES": env_int("SPOOL_MAX_MESSAGES", 2048),
    "MAX_OUTPUT_TOKENS": env_int("SPOOL_MAX_OUTPUT_TOKENS", 32768),
    # Pace of the built-in offline engine registered by `manage.py spool_bootstrap`.
    # How long this process trusts an API key (or session) it has looked up: a revoked key is
    # refused within this time, and a poll loop costs no Postgres query per request.
    "KEY_CACHE_SECONDS": env_float("SPOOL_KEY_CACHE_SECONDS", 2.0),
    # Read tokens (POST /v1/jobs/{id}/read_tokens, jobs/readtokens.py): how long one lives unless
    # asked otherwise, and the most it may. Short: a token travels in URLs, which end up in
    # browser histories and proxies' logs.
    "READ_TOKEN_SECONDS": env_int("SPOOL_READ_TOKEN_SECONDS", 300),
    "READ_TOKEN_MAX_SECONDS": env_int("SPOOL_READ_TOKEN_MAX_SECONDS", 3600),
    "OFFLINE_TOKENS_PER_SECOND": env_float("SPOOL_OFFLINE_TOKENS_PER_SECOND", 30.0),
    # Text search configuration (language) of stored-completion search: a pg_ts_config name.
    # A change takes effect with `manage.py spool_search_index --rebuild` (jobs/search.py).
    "SEARCH_CONFIG": env_str("SPOOL_SEARCH_CONFIG", "english"),
}
# How long /readyz waits for each of Postgres, Redis and the broker before calling it down.
SPOOL_READY_TIMEOUT_SECONDS = env_float("SPOOL_READY_TIMEOUT_SECONDS", 2.0)
SPOOL_JOB_MAX_SECONDS = env_float("SPOOL_JOB_MAX_SECONDS", 900.0)
# A running job whose worker has not refreshed its heartbeat for this long is ended (or, with
# no output yet, run again) by the sweeper that every worker runs, or by a reader waiting on it.
SPOOL_HEARTBEAT_TTL_SECONDS = env_int("SPOOL_HEARTBEAT_TTL_SECONDS", 20)
SPOOL_SWEEP_EVERY_SECONDS = env_float("SPOOL_SWEEP_EVERY_SECONDS", 10.0)
# How often one worker (whichever takes a Postgres advisory lock first) deletes what is past its
# retention: jobs, webhook deliveries, stored responses, the overview's rollup rows. 0: never
# (then run `manage.py spool_purge` from cron instead).
SPOOL_RETENTION_EVERY_SECONDS = env_float("SPOOL_RETENTION_EVERY_SECONDS", 3600.0)
# A queued job this old has probably lost its queue message (Redis restarted without
# persistence): it is sent again; the runner's row guard drops duplicates.
SPOOL_REQUEUE_AFTER_SECONDS = env_float("SPOOL_REQUEUE_AFTER_SECONDS", 120.0)
# Scheduling (jobs/scheduling/, docs/SCHEDULING.md). A job that has not started this long after
# it was created ends `expired` (a request may ask for less or more); 0: jobs wait for ever.
SPOOL_QUEUE_TIMEOUT_SECONDS = env_float("SPOOL_QUEUE_TIMEOUT_SECONDS", 3600.0)
# A slot of a limited engine is leased for this long and renewed by its worker a few times
# per lease: the slot of a worker that was killed comes back within it.
SPOOL_LEASE_SECONDS = env_float("SPOOL_LEASE_SECONDS", 30.0)
# How long an admitted job's slot is kept for it while its message reaches a worker.
SPOOL_ADMISSION_LEASE_SECONDS = env_float("SPOOL_ADMISSION_LEASE_SECONDS", 60.0)
# A job's output tokens as the tokens-per-minute limit counts them at its start, when the
# request gives no max tokens (the end corrects it by the usage).
SPOOL_ESTIMATED_OUTPUT_TOKENS = env_int("SPOOL_ESTIMATED_OUTPUT_TOKENS", 512)
# A deployment whose upstream failed a job before its first chunk (connection error, 5xx, a
# timeout) gets no job for this long; the job is tried on another deployment.
SPOOL_DEPLOYMENT_COOLDOWN_SECONDS = env_float("SPOOL_DEPLOYMENT_COOLDOWN_SECONDS", 30.0)

# The Batch API (jobs/batches/). OpenAI accepts one completion window, "24h"; this is how long it
# lasts here (tests shorten it): lines not done by then end `batch_expired`. A file holds at most
# BATCH_MAX_LINES requests (OpenAI's 50,000) and FILE_MAX_BYTES (OpenAI's 200 MB).
# The most numbers (inputs × dimensions) one embeddings answer holds: its JSON is about ten bytes
# a number, so the default (2048 inputs of 2048 dimensions) bounds one answer to ~40 MB.
SPOOL_EMBEDDINGS_MAX_VALUES = env_int("SPOOL_EMBEDDINGS_MAX_VALUES", 4_194_304)
SPOOL_BATCH_WINDOW_SECONDS = env_float("SPOOL_BATCH_WINDOW_SECONDS", 86400.0)
# Files of the Batch API (uploaded and written) expire this long after they are made unless the
# request sets its own (expires_after, output_expires_after), as OpenAI's batch files do; 0 keeps
# them until deleted.
SPOOL_BATCH_FILE_SECONDS = env_int("SPOOL_BATCH_FILE_SECONDS", 30 * 86400)
SPOOL_BATCH_MAX_LINES = env_int("SPOOL_BATCH_MAX_LINES", 50_000)
SPOOL_FILE_MAX_BYTES = env_int("SPOOL_FILE_MAX_BYTES", 200 * 1000 * 1000)
# How many of an owner's batch lines are queued or running at once: the rest wait in the file,
# not as jobs, so an owner's batches stay below SPOOL_MAX_ACTIVE_JOBS and leave room for their
# own interactive requests; the scheduler shares the engines between owners.
SPOOL_BATCH_ACTIVE_LINES = env_int("SPOOL_BATCH_ACTIVE_LINES", 100)
# How often a batch in progress is looked at (its finished lines counted, more lines started),
# and after how long without a look a worker sends it again (its task message was lost).
SPOOL_BATCH_POLL_SECONDS = env_float("SPOOL_BATCH_POLL_SECONDS", 0.5)
SPOOL_BATCH_STALE_SECONDS = env_float("SPOOL_BATCH_STALE_SECONDS", 60.0)
# The endpoints a batch may name, each with the module of the face that parses its lines and
# renders its answers (jobs.batches.endpoints.Endpoint).
SPOOL_BATCH_ENDPOINTS = {
    "/v1/chat/completions": "jobs.faces.openai.batch_lines.CHAT",
    "/v1/completions": "jobs.faces.openai.batch_lines.TEXT",
    "/v1/responses": "jobs.faces.openai.batch_lines.RESPONSES",
    "/v1/embeddings": "jobs.faces.openai.batch_lines.EMBEDDINGS",
}

# Webhooks (jobs/webhooks/). A failed delivery is tried again after WEBHOOK_BACKOFF_SECONDS,
# doubling up to WEBHOOK_BACKOFF_MAX_SECONDS, each wait drawn at random from its upper half
# (jitter) or what Retry-After asks, until WEBHOOK_RETRY_FOR_SECONDS after the event: about a day,
# as OpenAI retries its own (5 s doubling to an hour: 34 to 42 attempts). An endpoint that has
# failed every delivery for WEBHOOK_DISABLE_AFTER_SECONDS is disabled, saying why.
SPOOL_WEBHOOK_BACKOFF_SECONDS = env_float("SPOOL_WEBHOOK_BACKOFF_SECONDS", 5.0)
SPOOL_WEBHOOK_BACKOFF_MAX_SECONDS = env_float("SPOOL_WEBHOOK_BACKOFF_MAX_SECONDS", 3600.0)
SPOOL_WEBHOOK_RETRY_FOR_SECONDS = env_float("SPOOL_WEBHOOK_RETRY_FOR_SECONDS", 86400.0)
SPOOL_WEBHOOK_DISABLE_AFTER_SECONDS = env_float("SPOOL_WEBHOOK_DISABLE_AFTER_SECONDS", 86400.0)
# A receiver should answer at once and do its work later; a slow one is a failed attempt.
SPOOL_WEBHOOK_CONNECT_TIMEOUT_SECONDS = env_float("SPOOL_WEBHOOK_CONNECT_TIMEOUT_SECONDS", 3.0)
SPOOL_WEBHOOK_READ_TIMEOUT_SECONDS = env_float("SPOOL_WEBHOOK_READ_TIMEOUT_SECONDS", 10.0)
# Networks webhooks may reach although they are loopback, private, link-local, multicast or
# unspecified: CIDRs, comma-separated (e.g. 10.1.0.0/16 for receivers inside the cluster). Empty:
# none, so a registered URL cannot make Spool call its own infrastructure.
SPOOL_WEBHOOK_ALLOWED_NETWORKS = [
    net.strip() for net in env_str("SPOOL_WEBHOOK_ALLOWED_NETWORKS", "").split(",") if net.strip()
]

# Worker liveness (jobs/liveness.py): the worker touches this file every few seconds while it is
# well, and removes it when it stops; scripts/worker-alive.sh probes its age. Empty: off.
SPOOL_WORKER_HEARTBEAT_FILE = env_str("SPOOL_WORKER_HEARTBEAT_FILE", "")
SPOOL_WORKER_HEARTBEAT_SECONDS = env_float("SPOOL_WORKER_HEARTBEAT_SECONDS", 5.0)
# The worker's Prometheus exporter (jobs/metrics.py); 0: none. The web serves /metrics itself.
SPOOL_WORKER_METRICS_PORT = env_int("SPOOL_WORKER_METRICS_PORT", 0)

# `text` for people, `json` (one object per line) for a log pipeline. Every line logged while a
# job is in context (jobs/logcontext.py) carries its id. Web (uvicorn's own lines included) and
# worker (config/celery.py hands Celery's logging to this) write the same way.
SPOOL_LOG_FORMAT = env_str("SPOOL_LOG_FORMAT", "text")
if SPOOL_LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured(f"SPOOL_LOG_FORMAT must be text or json, got {SPOOL_LOG_FORMAT!r}")
_LOG_LEVEL = env_str("SPOOL_LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"job_id": {"()": "jobs.logcontext.JobIdFilter"}},
    "formatters": {
        "text": {
            "()": "logging.Formatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s [job %(job_id)s] %(message)s",
            "defaults": {"job_id": "-"},
        },
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "{levelname}{name}{message}",
            "style": "{",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": True,
            # uvicorn's copy of its message with terminal colours has no place in a log pipeline.
            "reserved_attrs": [*RESERVED_ATTRS, "color_message"],
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": SPOOL_LOG_FORMAT,
            "filters": ["job_id"],
        }
    },
    "root": {"handlers": ["console"], "level": _LOG_LEVEL},
    # uvicorn set up its own handlers before Django started; these replace them. No access log
    # (as scripts/web.sh asks): a poller makes a request per chunk batch. uvicorn writes one when
    # its logger has a handler, and configuring "uvicorn" would make the child propagate to one.
    "loggers": {
        "uvicorn": {"handlers": ["console"], "level": _LOG_LEVEL, "propagate": False},
        "uvicorn.error": {"level": _LOG_LEVEL},
        "uvicorn.access": {"handlers": [], "propagate": False},
    },
}
