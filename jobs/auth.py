"""Who is calling: API keys by Basic (access:secret) or Bearer (secret), or the session."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest

from jobs.keys import hash_secret, parse_basic, parse_bearer, secrets_match
from jobs.models import ApiKey


async def user_from_basic(header: str) -> AbstractBaseUser | None:
    pair = parse_basic(header)
    if pair is None:
        return None
    access, secret = pair
    key = await ApiKey.objects.select_related("owner").filter(access_key=access, revoked_at=None).afirst()
    if key is None or not secrets_match(secret, key.secret_hash) or not key.owner.is_active:
        return None
    return key.owner


async def user_from_bearer(header: str) -> AbstractBaseUser | None:
    secret = parse_bearer(header)
    if secret is None:
        return None
    key = await (
        ApiKey.objects.select_related("owner")
        .filter(secret_hash=hash_secret(secret), revoked_at=None)
        .afirst()
    )
    return key.owner if key is not None and key.owner.is_active else None


async def user_from_key(request: HttpRequest) -> AbstractBaseUser | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("basic "):
        return await user_from_basic(header)
    return await user_from_bearer(header)


async def request_user(request: HttpRequest) -> AbstractBaseUser | None:
    """A key in the Authorization header wins; a wrong key is refused even with a session."""
    if request.headers.get("Authorization"):
        return await user_from_key(request)
    user = await request.auser()
    return user if user.is_authenticated else None
