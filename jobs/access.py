"""What a caller may do: the grant of an API key (its owner, expiry, engines and faces) and of a
read token (one job, read only). Plain data and checks; the faces' authentication builds them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User

from jobs.models import ApiKey, Engine

# A view's `face` (jobs.faces.common.errors) -> the face a key is limited to (ApiKey.Face).
KEY_FACE = {
    "jobs": ApiKey.Face.NATIVE.value,
    "openai": ApiKey.Face.OPENAI.value,
    "semoss": ApiKey.Face.SEMOSS.value,
}


class EngineNotAllowed(Exception):
    """The key may not use this engine; every face answers 403 in its own shape."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(f"This API key may not use engine '{engine.name}'.")


@dataclass(frozen=True, slots=True)
class KeyGrant:
    user: User
    key_id: int
    expires_at: datetime | None
    engines: frozenset[str]  # engine ids (str of the UUID); empty: every engine
    faces: frozenset[str]  # ApiKey.Face values; empty: every face
    max_priority: str  # the highest priority class its jobs may ask for (jobs.scheduling)
    weight: int  # its owner's share of a limited engine against other owners

    @classmethod
    def of(cls, key: ApiKey) -> KeyGrant:
        return cls(
            user=key.owner,
            key_id=key.pk,
            expires_at=key.expires_at,
            engines=frozenset(str(e) for e in key.engines),
            faces=frozenset(key.faces),
            max_priority=key.max_priority,
            weight=key.weight,
        )

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def allows_face(self, view_face: str) -> bool:
        return not self.faces or KEY_FACE.get(view_face, view_face) in self.faces


@dataclass(frozen=True, slots=True)
class ReadGrant:
    """A read token's: the key that minted it (still checked: revoking the key ends its tokens),
    and the one job it reads."""

    key: KeyGrant
    job_id: uuid.UUID


def key_grant(auth: object) -> KeyGrant | None:
    """The key behind a request's `auth` (a key's grant, a read token's, or None: a password
    session, which is the user's own and has no limits)."""
    if isinstance(auth, ReadGrant):
        return auth.key
    return auth if isinstance(auth, KeyGrant) else None


def engines_of(auth: object) -> frozenset[str]:
    """The engine ids a request may start jobs on; empty: every engine."""
    grant = key_grant(auth)
    return grant.engines if grant is not None else frozenset()


def engine_allowed(engines: frozenset[str], engine_id: uuid.UUID | str) -> bool:
    """Whether `engines` (engines_of a request) takes this engine."""
    return not engines or str(engine_id) in engines


def check_engine(engines: frozenset[str], engine: Engine) -> None:
    if not engine_allowed(engines, engine.pk):
        raise EngineNotAllowed(engine)
