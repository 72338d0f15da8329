"""Read tokens: short-lived, signed capabilities to read one job, for a browser's EventSource,
which cannot send an Authorization header.

Signed with Django's signing (HMAC-SHA256 under SECRET_KEY, SECRET_KEY_FALLBACKS accepted), not
stored: checking one costs no Postgres and no Redis, so a page that polls or reconnects often adds
no load, and minting one writes nothing. What a signature cannot say (that the key which minted
it was revoked since) the authentication asks of the key cache, which a key's own requests use
anyway (jobs/faces/common/auth.py): a revoked key's tokens stop within that cache's time."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core import signing

# Another salt than any other signed value: a session cookie or a webhook secret never verifies here.
SALT = "spool.read-token"


@dataclass(frozen=True, slots=True)
class ReadToken:
    key_id: int
    job_id: uuid.UUID
    expires_at: int  # Unix seconds


def lifetime(asked: int | None) -> int:
    """Seconds a new token lives: what was asked (default READ_TOKEN_SECONDS), at most
    READ_TOKEN_MAX_SECONDS."""
    limit = settings.SPOOL.web.read_token_max_seconds
    return min(asked if asked is not None else settings.SPOOL.web.read_token_seconds, limit)


def mint(*, key_id: int, job_id: uuid.UUID, seconds: int, now: float | None = None) -> tuple[str, int]:
    """(the token, when it expires in Unix seconds)."""
    expires_at = int(now if now is not None else time.time()) + seconds
    token = signing.dumps({"k": key_id, "j": job_id.hex, "e": expires_at}, salt=SALT, compress=False)
    return token, expires_at


def verify(token: str, *, now: float | None = None) -> ReadToken | None:
    """The token's claims if its signature holds and it has not expired; None otherwise."""
    try:
        # max_age bounds a token by when it was signed too: one signed with a longer cap that
        # was lowered since is refused once past the new cap.
        claims = signing.loads(token, salt=SALT, max_age=settings.SPOOL.web.read_token_max_seconds)
    except signing.BadSignature:  # also SignatureExpired
        return None
    try:
        found = ReadToken(int(claims["k"]), uuid.UUID(hex=claims["j"]), int(claims["e"]))
    except (TypeError, KeyError, ValueError):
        return None  # signed by us, so never; but a token is input
    if found.expires_at <= (now if now is not None else time.time()):
        return None
    return found
