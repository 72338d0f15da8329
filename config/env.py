"""Tiny typed readers for environment variables that fail loudly on a bad value."""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {raw!r}")


def env_origins(name: str) -> list[str]:
    """Comma-separated web origins (scheme://host[:port], nothing after): a page's URL or a
    trailing slash would never match what a browser sends as Origin, silently."""
    from urllib.parse import urlsplit

    origins = [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]
    for origin in origins:
        try:
            parts = urlsplit(origin)
            parts.port  # noqa: B018  (raises on a port that is no number)
        except ValueError:
            parts = None
        if (
            parts is None
            or parts.scheme not in {"http", "https"}
            or not parts.hostname
            or origin != f"{parts.scheme}://{parts.netloc}"
        ):
            raise ImproperlyConfigured(
                f"{name} must list origins such as https://app.example.com or http://localhost:3000 "
                f"(scheme, host and port only), got {origin!r}"
            )
    return origins


def database_from_url(name: str, default: str) -> dict:
    """postgres://user:password@host:port/dbname -> Django DATABASES entry."""
    from urllib.parse import unquote, urlsplit

    url = os.environ.get(name) or default
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"} or not parts.path.strip("/"):
        raise ImproperlyConfigured(f"{name} must look like postgres://user@host:5432/dbname")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        # Connections come from a bounded pool per process and go back to it after each request
        # or job step: hundreds of concurrent requests (each async view's ORM calls run on a
        # thread of their own) and worker threads must not open a Postgres connection each.
        "CONN_MAX_AGE": 0,
        "OPTIONS": {
            "pool": {
                "min_size": 1,
                # 16 starved on this 2-core machine: 500 clients arriving at once on one web
                # process waited more than the 10 s timeout for a connection (tests/e2e/test_load.py
                # failed at 16 and passed at 32 and 64, 2026-12-02). Web + worker at 32 each stay
                # well under Postgres's default max_connections of 100 per pair of processes.
                "max_size": env_int("SPOOL_DB_POOL_SIZE", 32),
                # Past it, a request is answered 503 "overloaded" (jobs/overload.py). 30 s, as
                # psycopg_pool has it: a burst queues behind the CPU that creates its jobs
                # (~4 ms each), and on a loaded 2-core machine 500 clients arriving at once
                # waited up to 7 s with 10 s allowed (CI refused one, 2026-12-02); a burst is
                # better answered late than refused.
                "timeout": env_float("SPOOL_DB_POOL_TIMEOUT_SECONDS", 30.0),
            }
        },
    }


# What DEBUG falls back to; never accepted outside DEBUG.
DEV_SECRET_KEY = "spool-dev-only-not-secret"
SECRET_KEY_HELP = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))'"


def secret_key(name: str, *, debug: bool, fallback_file: Path) -> str:
    """The variable's value, else the contents of `fallback_file` (which `make run` writes once),
    else, under DEBUG only, a development key. Outside DEBUG a missing or weak key is refused:
    the SEMOSS session cookie and the admin's sessions are signed with it, so anyone who knows
    it can sign in as anyone."""
    value = os.environ.get(name, "").strip()
    if not value and fallback_file.is_file():
        value = fallback_file.read_text().strip()
    if debug:
        return value or DEV_SECRET_KEY
    if not value or value == DEV_SECRET_KEY:
        raise ImproperlyConfigured(
            f"{name} is not set. With DJANGO_DEBUG off Spool needs a real secret key; {SECRET_KEY_HELP}"
        )
    # Django's own bar for a key (its security.W009 check): long and not repetitive.
    if len(value) < 50 or len(set(value)) < 5 or value.startswith("django-insecure-"):
        raise ImproperlyConfigured(
            f"{name} is too weak: use at least 50 random characters; {SECRET_KEY_HELP}"
        )
    return value
