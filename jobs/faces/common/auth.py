"""DRF authentication of every face: an API key (Basic access:secret, or Bearer secret), and on
the SEMOSS face its login session. Lookups are cached in the process for at most KEY_CACHE_SECONDS,
so a poll loop costs no Postgres query per request and a revoked key is refused within that time."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from jobs.keys import hash_secret, parse_basic, parse_bearer, secrets_match
from jobs.models import ApiKey
from jobs.ttlcache import TtlCache, ttl

cache: TtlCache[User] = TtlCache()


async def _user_of_basic(header: str) -> User | None:
    pair = parse_basic(header)
    if pair is None:
        return None
    access, secret = pair
    key = await ApiKey.objects.select_related("owner").filter(access_key=access, revoked_at=None).afirst()
    if key is None or not secrets_match(secret, key.secret_hash) or not key.owner.is_active:
        return None
    return key.owner


async def _user_of_bearer(header: str) -> User | None:
    secret = parse_bearer(header)
    if secret is None:
        return None
    key = await (
        ApiKey.objects.select_related("owner")
        .filter(secret_hash=hash_secret(secret), revoked_at=None)
        .afirst()
    )
    return key.owner if key is not None and key.owner.is_active else None


async def user_of_key(header: str) -> User | None:
    """The active owner of the key in an Authorization header, or None."""
    # Keyed by a hash, so the cache holds no secret in the clear.
    credentials = hash_secret(header)
    user = cache.get(credentials)
    if user is None:
        is_basic = header[:6].lower() == "basic "
        user = await (_user_of_basic(header) if is_basic else _user_of_bearer(header))
        if user is not None:
            cache.put(credentials, user, ttl())
    return user


class ApiKeyAuthentication(BaseAuthentication):
    """Authorization: Bearer <secret key>, or Basic base64(access_key:secret_key).

    A wrong key is refused outright (401), also when a session cookie comes with it."""

    # Async where DRF's is sync: FaceView.ainitial awaits it on the loop.
    async def authenticate(self, request: Request) -> tuple[User, Any] | None:  # type: ignore[override]
        header = request._request.headers.get("Authorization", "")
        if not header:
            return None
        user = await user_of_key(header)
        if user is None:
            raise AuthenticationFailed("Invalid API key.")
        return user, None

    def authenticate_header(self, request: Request) -> str:
        # A 401 needs a challenge; without one DRF would answer 403.
        return "Bearer"


class SemossSessionAuthentication(BaseAuthentication):
    """The session that GET /Monolith/api/config sets for a key's login, as the ai-server-sdk
    uses it (it sends the cookie back, never a CSRF token).

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
        user = cache.get(credentials)
        if user is None:
            found = await django_request.auser()
            if not found.is_authenticated:
                return None
            user = found
            cache.put(credentials, user, ttl())
        return user, None

    def authenticate_header(self, request: Request) -> str:
        # Not "Basic": a browser would pop up its own login dialog for the playground.
        return 'Session realm="Monolith"'
