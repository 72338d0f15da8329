"""Read tokens are signed, scoped to one job and short-lived: what verifies is exactly what was
minted, until it expires, and nothing altered, re-salted or signed under another key verifies."""

from __future__ import annotations

import time
import uuid

import pytest
from django.core import signing

from jobs import readtokens

JOB = uuid.UUID("3f2c0000-0000-4000-8000-000000000001")


def test_a_minted_token_verifies_to_its_key_job_and_expiry():
    token, expires_at = readtokens.mint(key_id=7, job_id=JOB, seconds=300, now=1_000_000)
    assert expires_at == 1_000_300
    assert readtokens.verify(token, now=1_000_299) == readtokens.ReadToken(7, JOB, 1_000_300)


def test_a_token_is_refused_from_its_expiry_on():
    token, expires_at = readtokens.mint(key_id=7, job_id=JOB, seconds=60)
    assert readtokens.verify(token, now=expires_at - 1) is not None
    assert readtokens.verify(token, now=expires_at) is None
    assert readtokens.verify(token, now=expires_at + 3600) is None


@pytest.mark.parametrize("where", ["payload", "timestamp", "signature"])
def test_a_token_altered_anywhere_is_refused(where):
    token, _ = readtokens.mint(key_id=7, job_id=JOB, seconds=60)
    parts = dict(zip(["payload", "timestamp", "signature"], token.split(":"), strict=True))
    parts[where] = ("B" if parts[where][0] == "A" else "A") + parts[where][1:]
    assert readtokens.verify(":".join(parts.values())) is None


def test_another_jobs_claims_cannot_be_spliced_in():
    token, _ = readtokens.mint(key_id=7, job_id=JOB, seconds=60)
    other, _ = readtokens.mint(key_id=7, job_id=uuid.uuid4(), seconds=60)
    payload, rest = other.split(":", 1)[0], token.split(":", 1)[1]
    assert readtokens.verify(f"{payload}:{rest}") is None


def test_a_value_signed_for_anything_else_is_no_token():
    claims = {"k": 7, "j": JOB.hex, "e": int(time.time()) + 60}
    assert (
        readtokens.verify(signing.dumps(claims, salt="django.contrib.sessions.backends.signed_cookies"))
        is None
    )
    assert readtokens.verify(signing.dumps(claims)) is None
    assert readtokens.verify(signing.dumps(claims, salt=readtokens.SALT)) is not None


def test_a_token_signed_under_another_secret_key_is_refused_unless_it_is_a_fallback(settings):
    token, _ = readtokens.mint(key_id=7, job_id=JOB, seconds=60)
    old = settings.SECRET_KEY
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40
    assert readtokens.verify(token) is None
    settings.SECRET_KEY_FALLBACKS = [old]
    assert readtokens.verify(token) is not None


def test_a_token_older_than_the_cap_is_refused_whatever_expiry_it_carries(settings, monkeypatch):
    long_ago = int(time.time()) - settings.SPOOL.web.read_token_max_seconds - 10
    monkeypatch.setattr(signing.TimestampSigner, "timestamp", lambda self: signing.b62_encode(long_ago))
    token, _ = readtokens.mint(key_id=7, job_id=JOB, seconds=10**9)
    monkeypatch.undo()
    assert readtokens.verify(token) is None


@pytest.mark.parametrize("garbage", ["", "x", "a:b:c", "e30:1:2", "🙂" * 10])
def test_garbage_is_no_token(garbage):
    assert readtokens.verify(garbage) is None


def test_a_tokens_lifetime_is_the_default_or_what_was_asked_up_to_the_cap(settings):
    assert readtokens.lifetime(None) == settings.SPOOL.web.read_token_seconds == 300
    assert readtokens.lifetime(30) == 30
    assert readtokens.lifetime(10**9) == settings.SPOOL.web.read_token_max_seconds == 3600
