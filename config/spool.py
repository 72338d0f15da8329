"""Spool's configuration: one frozen object per concern, read once from the environment.

config/settings.py builds `SPOOL = Spool.read(os.environ)` and derives Django's and Celery's own
settings from it; the code reads `settings.SPOOL.<concern>.<field>`, typed, so mypy checks every
read. A process started with other variables reads them afresh; a test in process swaps the
object (`spool_env` in tests/conftest.py). The README's configuration tables name every
variable read here (tests/test_config.py)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

from config.env import Env

BASE_DIR = Path(__file__).resolve().parent.parent
ALLOWED_HOSTS = "127.0.0.1,localhost,[::1],testserver"


@dataclass(frozen=True, slots=True)
class Site:
    """Django's own knobs and the production profile (SPOOL_HTTPS: behind a TLS-terminating proxy
    that sets X-Forwarded-Proto; `manage.py check --deploy` then reports nothing)."""

    debug: bool
    secret_key: str
    # Earlier secret keys: what they signed or encrypted (sessions, webhook signing secrets) still
    # opens while it is replaced.
    secret_key_fallbacks: tuple[str, ...]
    allowed_hosts: tuple[str, ...]
    https: bool
    hsts_seconds: int
    hsts_include_subdomains: bool
    hsts_preload: bool
    # Origins whose pages may call the API faces (django-cors-headers); none by default.
    cors_allowed_origins: tuple[str, ...]
    # A `collectstatic` directory WhiteNoise serves beside the apps' own files; None: none.
    static_root: str | None
    # Largest request body accepted (bytes); a larger one gets 413 in the face's shape.
    max_body_bytes: int
    # How long /readyz waits for each of Postgres, Redis and the broker before calling it down.
    ready_timeout_seconds: float
    # Whether the web and worker processes take what they made at start-up out of Python's
    # garbage collector's scans once they are ready (config/gctune.py).
    gc_freeze: bool

    @classmethod
    def read(cls, env: Env) -> Site:
        debug = env.flag("DJANGO_DEBUG", False)
        key_file = Path(env.text("SPOOL_SECRET_KEY_FILE", str(BASE_DIR / "run" / "secret-key")))
        return cls(
            debug=debug,
            secret_key=env.secret_key("DJANGO_SECRET_KEY", debug=debug, fallback_file=key_file),
            secret_key_fallbacks=env.items("DJANGO_SECRET_KEY_FALLBACKS"),
            allowed_hosts=tuple(env.text("DJANGO_ALLOWED_HOSTS", ALLOWED_HOSTS).split(",")),
            https=env.flag("SPOOL_HTTPS", False),
            hsts_seconds=env.integer("SPOOL_HSTS_SECONDS", 31536000),
            hsts_include_subdomains=env.flag("SPOOL_HSTS_INCLUDE_SUBDOMAINS", True),
            hsts_preload=env.flag("SPOOL_HSTS_PRELOAD", True),
            cors_allowed_origins=env.origins("SPOOL_CORS_ALLOWED_ORIGINS"),
            static_root=env.text("SPOOL_STATIC_ROOT", "") or None,
            max_body_bytes=env.integer("SPOOL_MAX_BODY_BYTES", 1024 * 1024),
            ready_timeout_seconds=env.number("SPOOL_READY_TIMEOUT_SECONDS", 2.0),
            gc_freeze=env.flag("SPOOL_GC_FREEZE", True),
        )


@dataclass(frozen=True, slots=True)
class Database:
    """Postgres. Connections come from a bounded pool per process; a request that waits past the
    pool's timeout is answered 503 "overloaded" (jobs/overload.py). Sizes and timeout were chosen
    under load: docs/RELIABILITY.md ("a few hundred clients at once")."""

    url: str
    pool_size: int
    pool_timeout_seconds: float
    # The test suite's own database (tests/env.py), so runs never meet a development server's.
    test_name: str
    # Text search configuration (language) of stored-completion search: a pg_ts_config name.
    # A change takes effect with `manage.py spool_search_index --rebuild` (jobs/search.py).
    search_config: str
    # Whether the worker loop's own connections prepare its claim and end (jobs/worker/
    # database.py): off behind a pooler that cannot keep them, as PgBouncer before 1.21 in
    # transaction mode.
    prepared_statements: bool

    def django(self) -> dict[str, Any]:
        """The DATABASES entry."""
        parts = urlsplit(self.url)
        entry: dict[str, Any] = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            # Connections come from the pool and go back to it after each request or job step:
            # hundreds of concurrent requests (each async view's ORM calls run on a thread of
            # their own) and worker threads must not open a Postgres connection each.
            "CONN_MAX_AGE": 0,
            "OPTIONS": {
                "pool": {"min_size": 1, "max_size": self.pool_size, "timeout": self.pool_timeout_seconds}
            },
        }
        if self.test_name:
            entry["TEST"] = {"NAME": self.test_name}
        return entry

    @classmethod
    def read(cls, env: Env) -> Database:
        return cls(
            url=env.postgres_url("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/spool"),
            pool_size=env.integer("SPOOL_DB_POOL_SIZE", 32),
            pool_timeout_seconds=env.number("SPOOL_DB_POOL_TIMEOUT_SECONDS", 30.0),
            test_name=env.text("SPOOL_TEST_DATABASE", ""),
            search_config=env.text("SPOOL_SEARCH_CONFIG", "english"),
            prepared_statements=env.flag("SPOOL_DB_PREPARED_STATEMENTS", True),
        )


@dataclass(frozen=True, slots=True)
class Redis:
    """Spool's own Redis (chunk logs, wake-ups, leases, abuse-limit counters): REDIS_URL unless
    SPOOL_CHUNKLOG_REDIS_URL is set. It can be a Redis Cluster (the URL names any one node): every
    key of a job carries a {<job id>} hash tag, so each job lives on one shard. Redis 7 or later:
    the wake-ups are sharded pub/sub, on one node as on a cluster."""

    url: str
    cluster: bool
    # Key prefix of every Redis key Spool writes, so several deployments can share one Redis.
    prefix: str
    # How long a job's live chunk log stays after its last write; Postgres answers after.
    chunk_log_ttl_seconds: int
    # Connections per pool (one pool per process and event loop), opened only as they are
    # needed. A caller that finds them all busy waits up to pool_timeout_seconds, then gets a
    # 503 that says "overloaded". Sized from measurement (docs/PERFORMANCE.md, "Issue 29 (6)"):
    # a command holds its connection until the loop reads the reply, so a busy loop holds many;
    # at 1,000 long-polls on one web process 32 capped it at ~500 polls/s with the CPU to spare,
    # 256 served 19-30% more, 512 and 1,024 cost more CPU per poll for fewer.
    max_connections: int
    pool_timeout_seconds: float

    @classmethod
    def read(cls, env: Env, *, redis_url: str) -> Redis:
        return cls(
            url=env.text("SPOOL_CHUNKLOG_REDIS_URL", redis_url),
            cluster=env.flag("SPOOL_CHUNKLOG_REDIS_CLUSTER", False),
            prefix=env.text("SPOOL_REDIS_PREFIX", "spool"),
            chunk_log_ttl_seconds=env.integer("SPOOL_CHUNK_LOG_TTL_SECONDS", 3600),
            max_connections=env.integer("SPOOL_REDIS_MAX_CONNECTIONS", 256),
            pool_timeout_seconds=env.number("SPOOL_REDIS_POOL_TIMEOUT_SECONDS", 10.0),
        )


@dataclass(frozen=True, slots=True)
class Broker:
    """Celery's broker and queues (config/settings.py turns these into CELERY_* settings)."""

    redis_url: str
    url: str
    # The queue jobs are sent to; webhook deliveries go to `webhook_queue` beside it.
    queue: str
    # Redis transport only: a message taken by a worker that then died comes back after this
    # (README: which broker when), looked for every `restore_every_seconds`.
    visibility_timeout_seconds: int
    restore_every_seconds: int
    # Tasks run in the caller's process instead of being sent (debugging only).
    always_eager: bool

    @property
    def batch_queue(self) -> str:
        # Batch-class jobs of an engine without limits (config/settings.py says why).
        return f"{self.queue}-batch"

    @property
    def webhook_queue(self) -> str:
        # Webhook deliveries have a queue of their own, so a backlog of retries never waits in
        # line ahead of generations (nor the reverse).
        return f"{self.queue}-webhooks"

    @classmethod
    def read(cls, env: Env) -> Broker:
        redis_url = env.text("REDIS_URL", "redis://127.0.0.1:6379/0")
        return cls(
            redis_url=redis_url,
            url=env.text("CELERY_BROKER_URL", redis_url),
            queue=env.text("SPOOL_CELERY_QUEUE", "celery"),
            visibility_timeout_seconds=env.integer("SPOOL_BROKER_VISIBILITY_TIMEOUT_SECONDS", 300),
            restore_every_seconds=env.integer("SPOOL_BROKER_RESTORE_EVERY_SECONDS", 100),
            always_eager=env.flag("CELERY_TASK_ALWAYS_EAGER", False),
        )


@dataclass(frozen=True, slots=True)
class Web:
    """How long the web waits on a job for a client, and how long it trusts what it looked up."""

    # How long a poll with nothing new waits for the next chunk before answering empty.
    long_poll_seconds: float
    # How long a synchronous call (runPixel LLM, a non-streamed completion) waits for its job.
    sync_wait_seconds: float
    # How long this process trusts an API key (or session) it has looked up: a revoked key is
    # refused within this time, and a poll loop costs no Postgres query per request.
    key_cache_seconds: float
    # Read tokens (jobs/readtokens.py): how long one lives unless asked otherwise, and the most it
    # may. Short: a token travels in URLs, which end up in browser histories and proxies' logs.
    read_token_seconds: int
    read_token_max_seconds: int
    # pixelJobStreaming's common case answered before Django's middleware and DRF
    # (jobs/faces/semoss/fastpoll.py); off, every poll takes the full path.
    fast_poll: bool

    @classmethod
    def read(cls, env: Env) -> Web:
        return cls(
            long_poll_seconds=env.number("SPOOL_LONG_POLL_SECONDS", 1.0),
            sync_wait_seconds=env.number("SPOOL_SYNC_WAIT_SECONDS", 600.0),
            key_cache_seconds=env.number("SPOOL_KEY_CACHE_SECONDS", 2.0),
            read_token_seconds=env.integer("SPOOL_READ_TOKEN_SECONDS", 300),
            read_token_max_seconds=env.integer("SPOOL_READ_TOKEN_MAX_SECONDS", 3600),
            fast_poll=env.flag("SPOOL_FAST_POLL", True),
        )


@dataclass(frozen=True, slots=True)
class Limits:
    """Abuse limits per caller (0 turns one off) and the size of a request. Polls count as
    requests: a client streaming fast tokens polls often, so the request limit is generous; job
    starts are the costly part."""

    requests_per_minute: int
    jobs_per_minute: int
    max_active_jobs: int
    max_messages: int
    max_output_tokens: int
    # The most numbers (inputs × dimensions) one embeddings answer holds: its JSON is about ten
    # bytes a number, so the default (2048 inputs of 2048 dimensions) bounds one answer to ~40 MB.
    embeddings_max_values: int

    @classmethod
    def read(cls, env: Env) -> Limits:
        return cls(
            requests_per_minute=env.integer("SPOOL_REQUESTS_PER_MINUTE", 12000),
            jobs_per_minute=env.integer("SPOOL_JOBS_PER_MINUTE", 600),
            max_active_jobs=env.integer("SPOOL_MAX_ACTIVE_JOBS", 200),
            max_messages=env.integer("SPOOL_MAX_MESSAGES", 2048),
            max_output_tokens=env.integer("SPOOL_MAX_OUTPUT_TOKENS", 32768),
            embeddings_max_values=env.integer("SPOOL_EMBEDDINGS_MAX_VALUES", 4_194_304),
        )


@dataclass(frozen=True, slots=True)
class Worker:
    """What a worker runs and how it is found dead."""

    # A job running longer ends with an error; a request may ask for less, never more.
    job_max_seconds: float
    # A running job whose worker has not refreshed its heartbeat for this long is ended (or, with
    # no output yet, run again) by the sweeper that every worker runs, or by a reader waiting.
    heartbeat_ttl_seconds: int
    sweep_every_seconds: float
    # A queued job this old has probably lost its queue message (Redis restarted without
    # persistence): it is sent again; the runner's row guard drops duplicates.
    requeue_after_seconds: float
    # Liveness (jobs/liveness.py): the worker touches this file every `heartbeat_seconds` while
    # it is well and removes it when it stops; scripts/worker-alive.sh probes its age. "": off.
    heartbeat_file: str
    heartbeat_seconds: float
    # The worker's Prometheus exporter (jobs/metrics.py); 0: none. The web serves /metrics itself.
    metrics_port: int
    # Where a job's task runs: "loop", on the worker's event loop (jobs/worker/pool.py), or
    # "threads", on a thread of Celery's threads pool that hands the job to the loop and waits.
    pool: str

    @property
    def celery_pool(self) -> str:
        return "jobs.worker.pool:TaskPool" if self.pool == "loop" else "threads"

    @classmethod
    def read(cls, env: Env) -> Worker:
        pool = env.text("SPOOL_WORKER_POOL", "loop")
        if pool not in {"loop", "threads"}:
            raise ImproperlyConfigured(f"SPOOL_WORKER_POOL must be loop or threads, got {pool!r}")
        return cls(
            job_max_seconds=env.number("SPOOL_JOB_MAX_SECONDS", 900.0),
            heartbeat_ttl_seconds=env.integer("SPOOL_HEARTBEAT_TTL_SECONDS", 20),
            sweep_every_seconds=env.number("SPOOL_SWEEP_EVERY_SECONDS", 10.0),
            requeue_after_seconds=env.number("SPOOL_REQUEUE_AFTER_SECONDS", 120.0),
            heartbeat_file=env.text("SPOOL_WORKER_HEARTBEAT_FILE", ""),
            heartbeat_seconds=env.number("SPOOL_WORKER_HEARTBEAT_SECONDS", 5.0),
            metrics_port=env.integer("SPOOL_WORKER_METRICS_PORT", 0),
            pool=pool,
        )


@dataclass(frozen=True, slots=True)
class Scheduling:
    """Engine capacity and queueing (jobs/scheduling/, docs/SCHEDULING.md)."""

    # A job that has not started this long after it was created ends `expired` (a request may
    # ask for less or more); 0: jobs wait for ever.
    queue_timeout_seconds: float
    # A slot of a limited engine is leased for this long and renewed by its worker a few times
    # per lease: the slot of a worker that was killed comes back within it.
    lease_seconds: float
    # How long an admitted job's slot is kept for it while its message reaches a worker.
    admission_lease_seconds: float
    # A job's output tokens as the tokens-per-minute limit counts them at its start, when the
    # request gives no max tokens (the end corrects it by the usage).
    estimated_output_tokens: int
    # A deployment whose upstream failed a job before its first chunk (connection error, 5xx, a
    # timeout) gets no job for this long; the job is tried on another deployment.
    deployment_cooldown_seconds: float

    @classmethod
    def read(cls, env: Env) -> Scheduling:
        return cls(
            queue_timeout_seconds=env.number("SPOOL_QUEUE_TIMEOUT_SECONDS", 3600.0),
            lease_seconds=env.number("SPOOL_LEASE_SECONDS", 30.0),
            admission_lease_seconds=env.number("SPOOL_ADMISSION_LEASE_SECONDS", 60.0),
            estimated_output_tokens=env.integer("SPOOL_ESTIMATED_OUTPUT_TOKENS", 512),
            deployment_cooldown_seconds=env.number("SPOOL_DEPLOYMENT_COOLDOWN_SECONDS", 30.0),
        )


@dataclass(frozen=True, slots=True)
class Retention:
    """How long what Spool keeps is kept; 0 keeps it for ever. One worker at a time (a Postgres
    advisory lock) deletes what is past its age every `every_seconds`; 0: never (then run
    `manage.py spool_purge` from cron). A job is a handle clients read within minutes; what an
    owner means to keep is a stored completion or response, and their jobs stay while they do
    (jobs/retention.py)."""

    job_days: int
    webhook_delivery_days: int
    responses_days: int
    # The admin overview's per-minute rollup rows (its charts read 24 hours).
    rollup_days: int
    every_seconds: float

    @classmethod
    def read(cls, env: Env) -> Retention:
        return cls(
            job_days=env.integer("SPOOL_JOB_RETENTION_DAYS", 30),
            webhook_delivery_days=env.integer("SPOOL_WEBHOOK_DELIVERY_RETENTION_DAYS", 30),
            responses_days=env.integer("SPOOL_RESPONSES_RETENTION_DAYS", 30),
            rollup_days=env.integer("SPOOL_ROLLUP_RETENTION_DAYS", 30),
            every_seconds=env.number("SPOOL_RETENTION_EVERY_SECONDS", 3600.0),
        )


# The endpoints a batch may name, each with the module of the face that parses its lines and
# renders its answers (jobs.batches.endpoints), named here so that the core imports no face.
BATCH_ENDPOINTS: Mapping[str, str] = MappingProxyType({
    "/v1/chat/completions": "jobs.faces.openai.batch_lines.CHAT",
    "/v1/completions": "jobs.faces.openai.batch_lines.TEXT",
    "/v1/responses": "jobs.faces.openai.batch_lines.RESPONSES",
    "/v1/embeddings": "jobs.faces.openai.batch_lines.EMBEDDINGS",
})  # fmt: skip


@dataclass(frozen=True, slots=True)
class Batches:
    """The Batch API (jobs/batches/) and its files. OpenAI accepts one completion window, "24h";
    `window_seconds` is how long it lasts here (tests shorten it): lines not done by then end
    `batch_expired`. A file holds at most `max_lines` requests (OpenAI's 50,000) and
    `file_max_bytes` (OpenAI's 200 MB)."""

    window_seconds: float
    max_lines: int
    file_max_bytes: int
    # How many of an owner's batch lines are queued or running at once: the rest wait in the
    # file, not as jobs. It is the batches' own bound (their lines do not count against the
    # abuse limits); the scheduler shares the engines between owners.
    active_lines: int
    # How often a batch in progress is looked at (its finished lines counted, more lines
    # started), and after how long without a look a worker sends it again (its message was lost).
    poll_seconds: float
    stale_seconds: float
    # Files (uploaded and written) expire this long after they are made unless the request sets
    # its own (expires_after, output_expires_after), as OpenAI's batch files do; 0 keeps them
    # until deleted.
    file_seconds: int
    # Where Spool keeps what it writes to disk: the files under files/, unless `files_storage`
    # names another Django storage backend (django-storages' S3 backend, for one), configured
    # by `files_storage_options`.
    data_dir: Path
    files_storage: str
    files_storage_options: Mapping[str, Any]
    endpoints: Mapping[str, str] = field(default_factory=lambda: BATCH_ENDPOINTS)

    @classmethod
    def read(cls, env: Env) -> Batches:
        return cls(
            window_seconds=env.number("SPOOL_BATCH_WINDOW_SECONDS", 86400.0),
            max_lines=env.integer("SPOOL_BATCH_MAX_LINES", 50_000),
            file_max_bytes=env.integer("SPOOL_FILE_MAX_BYTES", 200 * 1000 * 1000),
            # 32: the same lines/s as 100 on a worker at full speed, at half the delay an
            # interactive stream meets beside them (docs/PERFORMANCE.md, the Batch API).
            active_lines=env.integer("SPOOL_BATCH_ACTIVE_LINES", 32),
            poll_seconds=env.number("SPOOL_BATCH_POLL_SECONDS", 0.5),
            stale_seconds=env.number("SPOOL_BATCH_STALE_SECONDS", 60.0),
            file_seconds=env.integer("SPOOL_BATCH_FILE_SECONDS", 30 * 86400),
            data_dir=Path(env.text("SPOOL_DATA_DIR", str(BASE_DIR / "run" / "data"))),
            files_storage=env.text("SPOOL_FILES_STORAGE", "django.core.files.storage.FileSystemStorage"),
            files_storage_options=MappingProxyType(env.json_object("SPOOL_FILES_STORAGE_OPTIONS")),
        )


@dataclass(frozen=True, slots=True)
class Webhooks:
    """Webhook deliveries (jobs/webhooks/). A failed delivery is tried again after
    `backoff_seconds`, doubling up to `backoff_max_seconds`, each wait drawn at random from its
    upper half (jitter) or what Retry-After asks, until `retry_for_seconds` after the event: about
    a day, as OpenAI retries its own. An endpoint that has failed every delivery for
    `disable_after_seconds` is disabled, saying why."""

    backoff_seconds: float
    backoff_max_seconds: float
    retry_for_seconds: float
    disable_after_seconds: float
    # A receiver should answer at once and do its work later; a slow one is a failed attempt.
    connect_timeout_seconds: float
    read_timeout_seconds: float
    # Networks webhooks may reach although they are loopback, private, link-local, multicast or
    # unspecified (CIDRs, e.g. 10.1.0.0/16 for receivers inside the cluster). None by default,
    # so a registered URL cannot make Spool call its own infrastructure.
    allowed_networks: tuple[str, ...]

    @classmethod
    def read(cls, env: Env) -> Webhooks:
        return cls(
            backoff_seconds=env.number("SPOOL_WEBHOOK_BACKOFF_SECONDS", 5.0),
            backoff_max_seconds=env.number("SPOOL_WEBHOOK_BACKOFF_MAX_SECONDS", 3600.0),
            retry_for_seconds=env.number("SPOOL_WEBHOOK_RETRY_FOR_SECONDS", 86400.0),
            disable_after_seconds=env.number("SPOOL_WEBHOOK_DISABLE_AFTER_SECONDS", 86400.0),
            connect_timeout_seconds=env.number("SPOOL_WEBHOOK_CONNECT_TIMEOUT_SECONDS", 3.0),
            read_timeout_seconds=env.number("SPOOL_WEBHOOK_READ_TIMEOUT_SECONDS", 10.0),
            allowed_networks=env.items("SPOOL_WEBHOOK_ALLOWED_NETWORKS"),
        )


@dataclass(frozen=True, slots=True)
class Engines:
    """What `manage.py spool_bootstrap` registers: the built-in offline engine, and an upstream
    OpenAI-compatible server when `upstream_base_url` is set (README: Engines)."""

    # Pace of the offline engine (0: as fast as it can).
    offline_tokens_per_second: float
    upstream_base_url: str
    upstream_name: str
    upstream_model: str
    # Tools through the prompt, for a server whose chat template has none.
    upstream_text_tools: bool
    upstream_api_key: str

    @classmethod
    def read(cls, env: Env) -> Engines:
        return cls(
            offline_tokens_per_second=env.number("SPOOL_OFFLINE_TOKENS_PER_SECOND", 30.0),
            upstream_base_url=env.text("SPOOL_UPSTREAM_BASE_URL", ""),
            upstream_name=env.text("SPOOL_UPSTREAM_NAME", "upstream"),
            upstream_model=env.text("SPOOL_UPSTREAM_MODEL", "gpt-4o-mini"),
            upstream_text_tools=env.text("SPOOL_UPSTREAM_TEXT_TOOLS", "") in ("1", "true"),
            upstream_api_key=env.text("SPOOL_UPSTREAM_API_KEY", ""),
        )


@dataclass(frozen=True, slots=True)
class Logs:
    """`text` for people, `json` (one object per line) for a log pipeline; web and worker alike.
    Every line logged while a job is in context (jobs/logcontext.py) carries its id."""

    format: str
    level: str

    @classmethod
    def read(cls, env: Env) -> Logs:
        format = env.text("SPOOL_LOG_FORMAT", "text")
        if format not in {"text", "json"}:
            raise ImproperlyConfigured(f"SPOOL_LOG_FORMAT must be text or json, got {format!r}")
        return cls(format=format, level=env.text("SPOOL_LOG_LEVEL", "INFO").upper())


@dataclass(frozen=True, slots=True)
class Spool:
    """Every concern's settings; `Spool.read(environ)` reads each variable once."""

    site: Site
    database: Database
    broker: Broker
    redis: Redis
    web: Web
    limits: Limits
    worker: Worker
    scheduling: Scheduling
    retention: Retention
    batches: Batches
    webhooks: Webhooks
    engines: Engines
    logs: Logs
    # The variables read, in order: what the README's tables must name.
    names: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def read(cls, environ: Mapping[str, str] = os.environ) -> Spool:
        env = Env(environ)
        broker = Broker.read(env)
        return cls(
            site=Site.read(env),
            database=Database.read(env),
            broker=broker,
            redis=Redis.read(env, redis_url=broker.redis_url),
            web=Web.read(env),
            limits=Limits.read(env),
            worker=Worker.read(env),
            scheduling=Scheduling.read(env),
            retention=Retention.read(env),
            batches=Batches.read(env),
            webhooks=Webhooks.read(env),
            engines=Engines.read(env),
            logs=Logs.read(env),
            names=tuple(dict.fromkeys(env.names)),
        )
