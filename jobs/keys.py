"""API key material: generation, hashing and lookup."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

ACCESS_PREFIX = "spool-ak-"
SECRET_PREFIX = "spool-sk-"


def new_key_pair() -> tuple[str, str]:
    return ACCESS_PREFIX + secrets.token_hex(12), SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secrets_match(secret: str, secret_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), secret_hash)


def parse_basic(header: str) -> tuple[str, str] | None:
    """'Basic base64(access:secret)' -> (access, secret), or None when it is not that."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    access, sep, secret = decoded.partition(":")
    # No key holds a NUL, and Postgres would refuse to look one up.
    return (access, secret) if sep and access and secret and "\x00" not in access else None


def parse_bearer(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None
