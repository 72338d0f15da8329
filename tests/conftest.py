"""Shared fixtures (tests/env.py has already pointed Redis at the test database)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from config import spool as config
from tests.cluster import cluster_spool, redis_cluster  # noqa: F401  (a real Redis Cluster, on demand)
from tests.servers import Spool, single_spool, spool  # noqa: F401  (the e2e server fixtures)
from tests.spoolenv import spool_read


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment, django_db_blocker):
    """Always create the test database. pytest-django creates it only when a collected test is
    marked django_db, so an end-to-end module run alone would otherwise use the real one."""
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        config = setup_databases(
            verbosity=0, interactive=False, aliases={"default"}, serialized_aliases=set()
        )
    yield
    with django_db_blocker.unblock():
        _end_other_sessions()
        teardown_databases(config, verbosity=0)


def _end_other_sessions() -> None:
    """Postgres refuses to drop a database anyone is connected to. A connection the ORM opened
    inside Playwright's greenlet lives in another asgiref context, so closing this thread's
    connections does not reach it: end every other session on the test database instead."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def clear_redis() -> None:
    """Delete this test run's Redis keys (and nothing of another run's)."""
    from django.conf import settings

    from jobs.redis_clients import sync_redis

    client = sync_redis()
    keys = list(client.scan_iter(match=f"{settings.SPOOL.redis.prefix}:*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])


@pytest.fixture
def redis_clean():
    """No Redis keys of this test run, for tests that count keys or messages."""
    from jobs.redis_clients import sync_redis

    clear_redis()
    yield sync_redis()


@pytest.fixture
def spool_env(settings) -> Callable[..., config.Spool]:
    """The one way a test in process changes Spool's settings: by the variables a server would be
    started with (the README's names). Each call adds to the earlier ones; the test's end puts
    the settings back."""
    variables: dict[str, Any] = {}

    def apply(**more: Any) -> config.Spool:
        variables.update(more)
        settings.SPOOL = spool_read(**variables)
        return settings.SPOOL

    return apply


@pytest.fixture
def one_limit_window(monkeypatch) -> None:
    """A test's request and job counts all fall in the minute it started in: counts that straddle
    a minute's end start a new window partway (CI once sent three job starts over a minute's end
    with a limit of two: the third was the second of its minute, and not refused)."""
    from jobs import limits

    minute = int(time.time() // 60)
    monkeypatch.setattr(limits, "_window", lambda: (minute, 30))
