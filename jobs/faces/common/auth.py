"""DRF authentication of every face: an API key (Basic access:secret, or Bearer secret), on the
SEMOSS face its login session, and on the views that read one job a read token (`?token=`).
Lookups are cached in the process for at most KEY_CACHE_SECONDS, so a poll loop costs no Postgres
query per request and a revoked key is refused within that time; an expired one at once (the
cached grant carries its expiry)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Q
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from jobs import readtokens
from jobs.access import KeyGrant, ReadGrant
from jobs.dbwork import db_work
from jobs.keys import hash_secret, parse_basic, parse_bearer, secrets_match
from jobs.models import ApiKey
from jobs.ttlcache import TtlCache, ttl

cache: TtlCache[KeyGrant] = TtlCache()
# A login session's user, and the key it logged in with (None: a password login).
sessions: TtlCache[tuple[User, int | None]] = TtlCache()

# The session entry that names the key a SEMOSS login (GET /config) was made with, so the session
# carries that key's limits and ends when the key is revoked or expires.
SESSION_KEY_ID = "spool_key_id"

# A key's last use is written when the one on record is older than this, not on every request:
# a write per request would make every poll (which otherwise touches only Redis) a Postgres row
# update, all of one key's requests contending for that one row lock and leaving a dead tuple
# each. Writes ride on the lookup a cache miss makes anyway, so a busy key costs one UPDATE a
# minute across all processes (the WHERE clause lets one of them win) and its last use is
# accurate to a minute.
LAST_USE_EVERY = timedelta(seconds=60)


class Refused(AuthenticationFailed):
    """Credentials that were real but may not be used (a revoked or expired key, an expired or
    forged read token): the 401 says which, in the face's envelope (errors.translate)."""

    def __init__(self, message: str, *, code: str = "invalid_api_key") -> None:
        super().__init__(message)
        self.message, self.error_code = message, code


def _expired(expires_at: Any) -> Refused:
    return Refused(f"This API key expired at {expires_at.isoformat()}.")


@db_work
def _lookup(where: dict[str, Any], secret: str | None) -> KeyGrant | Refused | None:
    """The key's grant; a Refused for a real key that is revoked or expired; None for no key
    (or a wrong secret, or an inactive owner: nothing says which). Records its last use."""
    key = ApiKey.objects.select_related("owner").filter(**where).first()
    if key is None or not key.owner.is_active:
        return None
    if secret is not None and not secrets_match(secret, key.secret_hash):
        return None
    now = timezone.now()
    if key.revoked_at is not None:
        return Refused("This API key was revoked.")
    if key.expires_at is not None and key.expires_at <= now:
        return _expired(key.expires_at)
    stale = now - LAST_USE_EVERY
    if key.last_used_at is None or key.last_used_at <= stale:
        ApiKey.objects.filter(Q(last_used_at=None) | Q(last_used_at__lte=stale), pk=key.pk).update(
            last_used_at=now
        )
    return KeyGrant.of(key)


# The lookup under way per cache name. A busy key's entry expires every KEY_CACHE_SECONDS, and
# every request that came before the first lookup returned made its own (in a thread each): with
# a thousand pollers on one key, hundreds of identical queries every time it expired. They share
# the one lookup instead.
_lookups: dict[str, asyncio.Future[KeyGrant | Refused | None]] = {}


def _lookup_under_way(name: str, where: dict[str, Any], secret: str | None) -> asyncio.Future[Any]:
    # The name says which credentials (a hash of the whole header, secret included, or a key
    # id), so every request that shares a lookup asked the same question.
    loop = asyncio.get_running_loop()
    task = _lookups.get(name)
    if task is None or task.get_loop() is not loop:
        task = _lookups[name] = asyncio.ensure_future(_lookup(where, secret))
        task.add_done_callback(lambda done: _lookups.pop(name) if _lookups.get(name) is done else None)
    return task


async def _shared_lookup(name: str, where: dict[str, Any], secret: str | None) -> KeyGrant | Refused | None:
    # Shielded: a caller that goes away does not cancel the others' answer.
    return await asyncio.shield(_lookup_under_way(name, where, secret))


def _renewed(name: str) -> Callable[[asyncio.Future[Any]], None]:
    def renew(done: asyncio.Future[Any]) -> None:
        if done.cancelled() or done.exception() is not None:
            return  # Postgres away: the entry runs out as it would have
        found = done.result()
        if isinstance(found, KeyGrant):
            cache.put(name, found, ttl())
        else:  # revoked, expired or gone: the next request looks it up, and is refused
            cache.drop(name)

    return renew


# `where`: the fields that find the key (plain values: a Q per request cost more than the cache
# lookup it comes with).
async def _cached(name: str, where: dict[str, Any], secret: str | None = None) -> KeyGrant | None:
    grant = cache.get(name)
    if grant is None:
        found = await _shared_lookup(name, where, secret)
        if isinstance(found, Refused):
            raise found
        if found is None:
            return None
        grant = found
        cache.put(name, grant, ttl())
    elif cache.remaining(name) < ttl() / 2 and name not in _lookups:
        # A key in use is looked up again in the background once half its entry's time has
        # passed, so that a request every second or so (a stream at a time) does not wait for
        # the lookup every other time (docs/PERFORMANCE.md, "Issue 29 (4)"). A revoked key is
        # still refused within the TTL: no entry is trusted past its time.
        _lookup_under_way(name, where, secret).add_done_callback(_renewed(name))
    if grant.expired(timezone.now()):
        raise _expired(grant.expires_at)
    return grant


async def grant_of_key(header: str) -> KeyGrant | None:
    """The grant of the key in an Authorization header; None when it is no key. Raises Refused
    for a key that is revoked or expired."""
    if header[:6].lower() == "basic ":
        pair = parse_basic(header)
        if pair is None:
            return None
        where, secret = {"access_key": pair[0]}, pair[1]
    else:
        bearer = parse_bearer(header)
        if bearer is None:
            return None
        where, secret = {"secret_hash": hash_secret(bearer)}, None
    # Keyed by a hash, so the cache holds no secret in the clear.
    return await _cached(hash_secret(header), where, secret)


async def grant_of_key_id(key_id: int) -> KeyGrant | None:
    """The grant of a key by its id (a read token's or a session's key), through the same cache."""
    return await _cached(f"id:{key_id}", {"pk": key_id})


def authorization(request: Request) -> str:
    """The request's Authorization header ("" without one)."""
    return str(request._request.META.get("HTTP_AUTHORIZATION", ""))


class ApiKeyAuthentication(BaseAuthentication):
    """Authorization: Bearer <secret key>, or Basic base64(access_key:secret_key).

    A wrong key is refused outright (401), also when a session cookie comes with it."""

    # Async where DRF's is sync: FaceView.ainitial awaits it on the loop.
    async def authenticate(self, request: Request) -> tuple[User, Any] | None:  # type: ignore[override]
        # From META: request.headers builds a dict of every header first, a measurable part
        # of a poll's cost (docs/PERFORMANCE.md, "Issue 29 (3)").
        header = authorization(request)
        if not header:
            return None
        grant = await grant_of_key(header)
        if grant is None:
            raise AuthenticationFailed("Invalid API key.")
        return grant.user, grant

    def authenticate_header(self, request: Request) -> str:
        # A 401 needs a challenge; without one DRF would answer 403.
        return "Bearer"


class ReadTokenAuthentication(BaseAuthentication):
    """`?token=<read token>` (jobs/readtokens.py), only on the views that read one job: the
    caller is the job's owner, limited to that job (FaceView.readable) and to what these views
    do, which is reading. A key in an Authorization header wins over a token."""

    async def authenticate(self, request: Request) -> tuple[User, Any] | None:  # type: ignore[override]
        token = request._request.GET.get("token")
        if not token:
            return None
        claims = readtokens.verify(token)
        if claims is None:
            raise Refused("This read token is invalid or has expired.", code="invalid_read_token")
        grant = await grant_of_key_id(claims.key_id)
        if grant is None:
            raise Refused("The API key that made this read token is gone.", code="invalid_read_token")
        return grant.user, ReadGrant(grant, claims.job_id)

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"


class SemossSessionAuthentication(BaseAuthentication):
    """The session that GET /Monolith/api/config sets for a key's login, as the ai-server-sdk
    uses it (it sends the cookie back, never a CSRF token). A session made by a key carries
    that key's grant: its limits hold, and it ends when the key is revoked or expires.

    Why no CSRF check: the cookie is SameSite=Lax (Django's default), so a cross-site page cannot
    make a browser send it with a POST; every SEMOSS endpoint that acts is POST-only; and the
    cookie is a signed, HttpOnly session. The native and OpenAI faces take keys only."""

    # Async where DRF's is sync: FaceView.ainitial awaits it on the loop.
    async def authenticate(self, request: Request) -> tuple[User, Any] | None:  # type: ignore[override]
        django_request = request._request
        cookie = django_request.COOKIES.get(settings.SESSION_COOKIE_NAME)
        if not cookie:
            return None
        credentials = "session:" + hash_secret(cookie)
        entry = sessions.get(credentials)
        if entry is None:
            found = await django_request.auser()
            if not found.is_authenticated:
                return None
            # Signed-cookie sessions: reading one is decoding the cookie, no I/O.
            key_id = django_request.session.get(SESSION_KEY_ID)
            entry = (found, key_id if isinstance(key_id, int) else None)
            sessions.put(credentials, entry, ttl())
        user, key_id = entry
        if key_id is None:
            return user, None
        grant = await grant_of_key_id(key_id)
        if grant is None:
            raise AuthenticationFailed("The API key this session logged in with is gone.")
        return grant.user, grant

    def authenticate_header(self, request: Request) -> str:
        # Not "Basic": a browser would pop up its own login dialog for the playground.
        return 'Session realm="Monolith"'
