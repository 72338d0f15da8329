"""API keys are looked up once per KEY_CACHE_SECONDS per process, and a revoked key is refused
once that time has passed (the cache's clock is injected, so no test waits)."""

from __future__ import annotations

import base64

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import services
from jobs.faces.common import auth
from jobs.ttlcache import TtlCache, ttl

pytestmark = pytest.mark.django_db


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(auth, "cache", TtlCache(clock))
    return clock


@pytest.fixture
def key():
    user = services.user_ensure(username="cached")
    key, secret = services.key_create(owner=user)
    basic = base64.b64encode(f"{key.access_key}:{secret}".encode()).decode()
    return key, f"Bearer {secret}", f"Basic {basic}"


def lookup(header: str):
    return async_to_sync(auth.user_of_key)(header)


@pytest.mark.parametrize("scheme", [1, 2], ids=["bearer", "basic"])
def test_a_key_is_looked_up_once_while_its_entry_is_fresh(clock, key, scheme):
    header = key[scheme]
    assert lookup(header).username == "cached"
    with CaptureQueriesContext(connection) as queries:
        clock.now += ttl() - 0.1
        assert lookup(header).username == "cached"
    assert len(queries) == 0


@pytest.mark.parametrize("scheme", [1, 2], ids=["bearer", "basic"])
def test_a_revoked_key_is_refused_once_its_cache_entry_is_older_than_the_limit(clock, key, settings, scheme):
    assert settings.SPOOL["KEY_CACHE_SECONDS"] <= 2
    api_key, header = key[0], key[scheme]
    assert lookup(header) is not None
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["revoked_at"])
    clock.now += settings.SPOOL["KEY_CACHE_SECONDS"]
    assert lookup(header) is None


def test_a_wrong_key_is_never_cached_so_a_new_key_works_at_once(clock):
    user = services.user_ensure(username="fresh")
    assert lookup("Bearer spool-sk-not-yet") is None
    with CaptureQueriesContext(connection) as queries:
        assert lookup("Bearer spool-sk-not-yet") is None
    assert len(queries) == 1
    _, secret = services.key_create(owner=user)
    assert lookup(f"Bearer {secret}").username == "fresh"
