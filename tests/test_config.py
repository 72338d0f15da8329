"""Settings are read once from the environment into one frozen object per concern, through typed
readers that fail loudly on a bad value; the README's tables name every variable read."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import Env
from config.spool import Spool

ROOT = Path(__file__).resolve().parent.parent
# Read by the shell scripts (scripts/*.sh) before any Python runs, so the object never sees them.
READ_BY_SCRIPTS = {
    "PORT",
    "SPOOL_WEB_HOST",
    "SPOOL_WEB_CONCURRENCY",
    "SPOOL_WORKER_CONCURRENCY",
    "SPOOL_WORKER_ALIVE_SECONDS",
    "SPOOL_METRICS_DIR",
    "SPOOL_PYTHON",
}


def test_tests_use_their_own_redis_database_and_prefix():
    from django.conf import settings

    assert settings.SPOOL.broker.redis_url.endswith("/15")
    assert settings.SPOOL.redis.prefix.startswith("spooltest")
    assert settings.DATABASES["default"]["TEST"]["NAME"].startswith("test_spool_")


def test_a_bad_number_names_its_variable():
    env = Env({"SPOOL_X": "ten"})
    with pytest.raises(ImproperlyConfigured, match="SPOOL_X must be an integer"):
        env.integer("SPOOL_X", 1)
    with pytest.raises(ImproperlyConfigured, match="SPOOL_X must be a number"):
        env.number("SPOOL_X", 1.0)
    with pytest.raises(ImproperlyConfigured, match="SPOOL_LEASE_SECONDS must be a number"):
        Spool.read({"DJANGO_DEBUG": "1", "SPOOL_LEASE_SECONDS": "soon"})


def test_booleans_accept_the_usual_words():
    assert Env({"SPOOL_X": "yes"}).flag("SPOOL_X", False) is True
    with pytest.raises(ImproperlyConfigured, match="true or false"):
        Env({"SPOOL_X": "maybe"}).flag("SPOOL_X", False)


def test_database_urls_become_django_settings():
    spool = Spool.read({"DJANGO_DEBUG": "1", "DATABASE_URL": "postgres://me:p%40ss@db.local:6543/spool"})
    db = spool.database.django()
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "me",
        "p@ss",
        "db.local",
        "6543",
        "spool",
    )
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL must look like"):
        Spool.read({"DJANGO_DEBUG": "1", "DATABASE_URL": "mysql://x/y"})


def test_cors_origins_are_origins_or_a_clear_error():
    env = Env({"SPOOL_X": " https://app.example.com, http://127.0.0.1:3000 ,"})
    assert env.origins("SPOOL_X") == ("https://app.example.com", "http://127.0.0.1:3000")
    assert Env({}).origins("SPOOL_X") == ()
    for bad in ("https://app.example.com/", "app.example.com", "https://app.example.com/page", "ftp://x",
                "http://x:port", "*"):  # fmt: skip
        with pytest.raises(ImproperlyConfigured, match="SPOOL_X must list origins"):
            Env({"SPOOL_X": bad}).origins("SPOOL_X")


def test_the_settings_are_frozen_and_read_from_the_variables_given():
    spool = Spool.read({"DJANGO_DEBUG": "1", "SPOOL_WEBHOOK_ALLOWED_NETWORKS": "10.0.0.0/8, 127.0.0.1/32"})
    assert spool.webhooks.allowed_networks == ("10.0.0.0/8", "127.0.0.1/32")
    assert spool.broker.webhook_queue == "celery-webhooks"
    assert spool.redis.url == spool.broker.redis_url == "redis://127.0.0.1:6379/0"
    with pytest.raises(dataclasses.FrozenInstanceError):
        spool.webhooks.backoff_seconds = 1.0  # type: ignore[misc]


def test_a_test_changes_the_settings_by_the_variables_a_server_would_get(spool_env, settings):
    spool_env(SPOOL_LEASE_SECONDS=0.25)
    spool_env(SPOOL_WEBHOOK_ALLOWED_NETWORKS=["10.0.0.0/8"])
    assert settings.SPOOL.scheduling.lease_seconds == 0.25
    assert settings.SPOOL.webhooks.allowed_networks == ("10.0.0.0/8",)


def _readme_variables() -> set[str]:
    """The variables the README's tables name in their first column."""
    names: set[str] = set()
    for line in (ROOT / "README.md").read_text().splitlines():
        first = line.split("|")[1] if line.startswith("|") else ""
        names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", first))
    return names


def test_the_readme_tables_name_every_variable_read_and_no_other():
    read = set(Spool.read({"DJANGO_DEBUG": "1"}).names)
    documented = _readme_variables()
    assert read - documented == set(), "read but not in the README's tables"
    assert documented - read - READ_BY_SCRIPTS == set(), "in the README's tables but never read"
    scripts = "".join(path.read_text() for path in (ROOT / "scripts").glob("*.sh"))
    assert {name for name in READ_BY_SCRIPTS if name not in scripts} == set()
