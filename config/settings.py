"""The one settings module; every deployment knob is an environment variable."""

from __future__ import annotations

from pathlib import Path

from kombu import Queue
from pythonjsonlogger.core import RESERVED_ATTRS

from config.spool import Spool

BASE_DIR = Path(__file__).resolve().parent.parent

# Spool's own configuration, every concern read once from the environment (config/spool.py);
# Django's and Celery's settings below are derived from it.
SPOOL = Spool.read()

DEBUG = SPOOL.site.debug
SECRET_KEY = SPOOL.site.secret_key
SECRET_KEY_FALLBACKS = list(SPOOL.site.secret_key_fallbacks)
ALLOWED_HOSTS = list(SPOOL.site.allowed_hosts)

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
    "jobs.faces.common.middleware.FaceErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "jobs.compat.onloop.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Django's MessageMiddleware, for pages only (the admin's check accepts the subclass).
    "jobs.faces.common.page_messages.PageMessageMiddleware",
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

DATABASES = {"default": SPOOL.database.django()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Signed-cookie sessions: the SEMOSS login cookie costs no database write per client.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
SESSION_COOKIE_HTTPONLY = True

# The production profile: Spool behind a TLS-terminating proxy that sets X-Forwarded-Proto.
# Under it `manage.py check --deploy` reports nothing (tests/test_deploy_settings.py).
if SPOOL.site.https:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    # Probes and scrapes come over plain HTTP from inside the cluster, not through the proxy.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = SPOOL.site.hsts_seconds
    SECURE_HSTS_INCLUDE_SUBDOMAINS = SPOOL.site.hsts_include_subdomains
    SECURE_HSTS_PRELOAD = SPOOL.site.hsts_preload

# Browser pages on other origins (django-cors-headers): the origins allowed to call the API faces,
# comma-separated (https://app.example.com,http://localhost:3000); none by default. No cookies
# cross origins (keys and read tokens are sent explicitly), so credentials stay off.
CORS_ALLOWED_ORIGINS = list(SPOOL.site.cors_allowed_origins)
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
STATIC_ROOT = SPOOL.site.static_root
WHITENOISE_USE_FINDERS = True

# Largest request body accepted (bytes); a larger one gets 413 in the face's shape.
DATA_UPLOAD_MAX_MEMORY_SIZE = SPOOL.site.max_body_bytes

# Uploads (POST /v1/files): a file part larger than this goes to a temporary file on disk as it
# arrives, not to memory; JSON bodies stay under it (SPOOL_MAX_BODY_BYTES), as before.
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE

# The Batch API's files (input and output JSONL), in the storage SPOOL.batches names.
_FILES_OPTIONS = dict(SPOOL.batches.files_storage_options)
if SPOOL.batches.files_storage == "django.core.files.storage.FileSystemStorage":
    _FILES_OPTIONS = {"location": str(SPOOL.batches.data_dir / "files"), **_FILES_OPTIONS}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "spool_files": {"BACKEND": SPOOL.batches.files_storage, "OPTIONS": _FILES_OPTIONS},
}

# Celery, read by config/celery.py under the CELERY_ namespace.
CELERY_BROKER_URL = SPOOL.broker.url
CELERY_TASK_DEFAULT_QUEUE = SPOOL.broker.queue
CELERY_TASK_IGNORE_RESULT = True  # results live in Postgres, not in a result backend
# A job is acknowledged only once it has run, so a worker killed mid-job does not lose it;
# the runner's row-count guard keeps a redelivered job from running twice.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Generations are long and I/O-bound: take one message per free thread, not a batch that
# could sit behind a slow generation.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A job's task on the worker's event loop, the others on threads (jobs/worker/pool.py).
CELERY_WORKER_POOL = SPOOL.worker.celery_pool
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
    "visibility_timeout": SPOOL.broker.visibility_timeout_seconds,
    # How often a worker looks for messages unacknowledged past that timeout: kombu's default
    # (a sweep every 10th call, 10 s apart), expressed as one period a test can shorten.
    "unacked_restore_interval": SPOOL.broker.restore_every_seconds,
    "unacked_restore_throttle": 1,
}
CELERY_TASK_ALWAYS_EAGER = SPOOL.broker.always_eager
# Webhook deliveries (jobs/webhooks/) go to a queue of their own beside the jobs' queue, so a
# backlog of retries never waits in line ahead of generations (nor the reverse). Workers started
# without -Q consume both; `-Q <queue>-webhooks` makes a worker that only delivers.
# Jobs of class batch on an engine without limits (those of a limited engine wait in its queue,
# where the scheduler orders them) go to a queue of their own, so interactive and default jobs
# never wait behind a backlog of Batch API lines: on Redis a worker takes from its queues in
# turn (kombu rotates them), so a job of the main queue waits for at most one batch job per free
# slot; RabbitMQ's channel limiter gives a freed slot to one of the queues at random, so one on
# average there, and k with odds of 1 in 2**k.
CELERY_TASK_QUEUES = [
    Queue(SPOOL.broker.queue),
    Queue(SPOOL.broker.batch_queue),
    Queue(SPOOL.broker.webhook_queue),
]
CELERY_TASK_ROUTES = {"spool.deliver_webhook": {"queue": SPOOL.broker.webhook_queue}}


# Logs as SPOOL.logs says (config/spool.py); uvicorn's lines and Celery's (config/celery.py hands
# its logging to this) included.
_LOG_LEVEL = SPOOL.logs.level
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
            "formatter": SPOOL.logs.format,
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
