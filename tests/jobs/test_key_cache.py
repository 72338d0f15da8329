"""API keys are looked up once per KEY_CACHE_SECONDS per process, a revoked key is refused once
that time has passed, an expired one at once, and a key's last use is written at most once a
minute (the cache's clock is injected, so no test waits)."""

from __future__ import annotations

import asyncio
import base64
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import services
from jobs.faces.common import auth
from jobs.keys import hash_secret
from jobs.models import ApiKey
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
    grant = async_to_sync(auth.grant_of_key)(header)
    return grant.user if grant is not None else None


@pytest.mark.parametrize("scheme", [1, 2], ids=["bearer", "basic"])
def test_a_key_is_looked_up_once_while_its_entry_is_fresh(clock, key, scheme):
    header = key[scheme]
    assert lookup(header).username == "cached"
    with CaptureQueriesContext(connection) as queries:
        clock.now += ttl() / 2 - 0.1
        assert lookup(header).username == "cached"
    assert len(queries) == 0


def lookup_then_renewal(header: str):
    """The grant of a lookup, once the background lookup it started (if any) has ended."""

    async def both():
        grant = await auth.grant_of_key(header)
        for task in list(auth._lookups.values()):
            await asyncio.wait([task])
        return grant

    return async_to_sync(both)()


def test_a_key_in_use_is_renewed_in_the_background_before_its_entry_runs_out(clock, key):
    header = key[1]
    assert lookup(header).username == "cached"
    name = hash_secret(header)
    clock.now += ttl() / 2 + 0.1
    assert lookup_then_renewal(header).user.username == "cached"  # answered from the entry
    assert auth.cache.remaining(name) == ttl()  # and the entry renewed meanwhile
    clock.now += ttl() - 0.1  # past the first entry's time, within the renewed one's
    assert auth.cache.get(name) is not None


def test_a_key_revoked_while_in_use_is_refused_within_the_limit(clock, key):
    api_key, header = key[0], key[1]
    assert lookup(header) is not None
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["revoked_at"])
    clock.now += ttl() / 2 + 0.1
    assert lookup_then_renewal(header) is not None  # the entry still holds; its renewal finds the revocation
    with pytest.raises(auth.Refused, match="revoked"):
        lookup(header)


@pytest.mark.parametrize("scheme", [1, 2], ids=["bearer", "basic"])
def test_a_revoked_key_is_refused_once_its_cache_entry_is_older_than_the_limit(clock, key, settings, scheme):
    assert settings.SPOOL.web.key_cache_seconds <= 2
    api_key, header = key[0], key[scheme]
    assert lookup(header) is not None
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["revoked_at"])
    clock.now += settings.SPOOL.web.key_cache_seconds
    with pytest.raises(auth.Refused, match="revoked"):
        lookup(header)


def test_a_wrong_key_is_never_cached_so_a_new_key_works_at_once(clock):
    user = services.user_ensure(username="fresh")
    assert lookup("Bearer spool-sk-not-yet") is None
    with CaptureQueriesContext(connection) as queries:
        assert lookup("Bearer spool-sk-not-yet") is None
    assert len(queries) == 1
    _, secret = services.key_create(owner=user)
    assert lookup(f"Bearer {secret}").username == "fresh"


def test_an_expired_key_is_refused_at_once_even_while_its_entry_is_fresh(clock, key):
    api_key, header = key[0], key[1]
    api_key.expires_at = timezone.now() + timedelta(seconds=30)
    api_key.save(update_fields=["expires_at"])
    assert lookup(header).username == "cached"
    # The cached grant carries the expiry: no lookup is needed to see it has passed.
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    cached = auth.cache.get(hash_secret(header))
    object.__setattr__(cached, "expires_at", timezone.now() - timedelta(seconds=1))
    with CaptureQueriesContext(connection) as queries, pytest.raises(auth.Refused, match="expired at"):
        lookup(header)
    assert len(queries) == 0
    clock.now += ttl()
    with pytest.raises(auth.Refused, match="expired at"):
        lookup(header)


def test_the_last_use_is_written_when_the_recorded_one_is_a_minute_old(clock, key):
    api_key, header = key[0], key[1]
    assert api_key.last_used_at is None
    lookup(header)
    first = ApiKey.objects.get(pk=api_key.pk).last_used_at
    assert first is not None
    clock.now += ttl()  # another lookup, within the minute: nothing written
    with CaptureQueriesContext(connection) as queries:
        lookup(header)
    assert [q["sql"] for q in queries if q["sql"].startswith("UPDATE")] == []
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == first
    earlier = first - auth.LAST_USE_EVERY
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=earlier)
    clock.now += ttl()
    lookup(header)
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at > first


def test_a_key_found_by_id_shares_the_cache_and_its_refusals(clock, key):
    api_key = key[0]
    grant = async_to_sync(auth.grant_of_key_id)(api_key.pk)
    assert grant.user.username == "cached" and grant.key_id == api_key.pk
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["revoked_at"])
    assert async_to_sync(auth.grant_of_key_id)(api_key.pk) is grant  # trusted for the cache's time
    clock.now += ttl()
    with pytest.raises(auth.Refused, match="revoked"):
        async_to_sync(auth.grant_of_key_id)(api_key.pk)


@pytest.mark.parametrize("scheme", [1, 2], ids=["bearer", "basic"])
def test_requests_that_miss_together_share_one_lookup(clock, key, scheme):
    header = key[scheme]

    async def at_once() -> list:
        return await asyncio.gather(*(auth.grant_of_key(header) for _ in range(20)))

    with CaptureQueriesContext(connection) as queries:
        grants = async_to_sync(at_once)()
    assert {grant.user.username for grant in grants} == {"cached"}
    assert len([q for q in queries if q["sql"].startswith("SELECT")]) == 1


def test_a_refusal_shared_by_requests_that_miss_together_refuses_each(clock, key):
    api_key, header = key[0], key[1]
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["revoked_at"])

    async def at_once() -> list:
        return await asyncio.gather(*(auth.grant_of_key(header) for _ in range(5)), return_exceptions=True)

    answers = async_to_sync(at_once)()
    assert all(isinstance(answer, auth.Refused) and "revoked" in answer.message for answer in answers)
    assert auth.cache.get(hash_secret(header)) is None
