"""Signing secrets: made here, shown once, kept encrypted with a key derived from SECRET_KEY.

Spool must read a secret back to sign with it, so it cannot be stored hashed as API keys are.
Fernet (AES-128-CBC with HMAC-SHA256) under a key derived from SECRET_KEY means a copy of the
database alone reveals no secret. SECRET_KEY_FALLBACKS are tried too, so the secret key can be
rotated as Django rotates it; a secret written under a key no longer listed cannot be read, and
its endpoint must get a new one (rotate_secret).
"""

from __future__ import annotations

import base64
import secrets

from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

PREFIX = "whsec_"
# What HKDF derives the encryption key for: another use of SECRET_KEY gets another key.
_PURPOSE = b"spool webhook signing secrets v1"


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def hint(secret: str) -> str:
    """Enough of a secret to tell two apart, as OpenAI's signing_secret_hint."""
    return f"{PREFIX}...{secret[-4:]}"


def key_bytes(secret: str) -> bytes:
    """The HMAC key a `whsec_` secret stands for."""
    return base64.b64decode(secret.removeprefix(PREFIX))


def _fernet(secret_key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def _box() -> MultiFernet:
    # The first key encrypts; every one of them decrypts.
    return MultiFernet([_fernet(key) for key in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]])


def encrypt(secret: str) -> str:
    return _box().encrypt(secret.encode()).decode()


def decrypt(token: str) -> str:
    """Raises cryptography.fernet.InvalidToken when no configured key opens it."""
    return _box().decrypt(token.encode()).decode()
