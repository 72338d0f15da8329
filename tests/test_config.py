"""Settings read the environment through typed helpers that fail loudly on a bad value."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import database_from_url, env_bool, env_float, env_int, env_origins


def test_tests_use_their_own_redis_database_and_prefix():
    from django.conf import settings

    assert settings.REDIS_URL.endswith("/15")
    assert settings.SPOOL["REDIS_PREFIX"].startswith("spooltest")
    assert settings.DATABASES["default"]["TEST"]["NAME"].startswith("test_spool_")


def test_a_bad_number_names_its_variable(monkeypatch):
    monkeypatch.setenv("SPOOL_X", "ten")
    with pytest.raises(ImproperlyConfigured, match="SPOOL_X must be an integer"):
        env_int("SPOOL_X", 1)
    with pytest.raises(ImproperlyConfigured, match="SPOOL_X must be a number"):
        env_float("SPOOL_X", 1.0)


def test_booleans_accept_the_usual_words(monkeypatch):
    monkeypatch.setenv("SPOOL_X", "yes")
    assert env_bool("SPOOL_X", False) is True
    monkeypatch.setenv("SPOOL_X", "maybe")
    with pytest.raises(ImproperlyConfigured, match="true or false"):
        env_bool("SPOOL_X", False)


def test_database_urls_become_django_settings(monkeypatch):
    monkeypatch.setenv("DB", "postgres://me:p%40ss@db.local:6543/spool")
    db = database_from_url("DB", "")
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "me",
        "p@ss",
        "db.local",
        "6543",
        "spool",
    )
    monkeypatch.setenv("DB", "mysql://x/y")
    with pytest.raises(ImproperlyConfigured, match="DB must look like"):
        database_from_url("DB", "")


def test_cors_origins_are_origins_or_a_clear_error(monkeypatch):
    monkeypatch.setenv("SPOOL_X", " https://app.example.com, http://127.0.0.1:3000 ,")
    assert env_origins("SPOOL_X") == ["https://app.example.com", "http://127.0.0.1:3000"]
    monkeypatch.delenv("SPOOL_X")
    assert env_origins("SPOOL_X") == []
    for bad in ("https://app.example.com/", "app.example.com", "https://app.example.com/page", "ftp://x",
                "http://x:port", "*"):  # fmt: skip
        monkeypatch.setenv("SPOOL_X", bad)
        with pytest.raises(ImproperlyConfigured, match="SPOOL_X must list origins"):
            env_origins("SPOOL_X")
