"""The ids the API shows: "file-" and "batch_" and "batch_req_" before a row's hex, as OpenAI's."""

from __future__ import annotations

import uuid
from typing import Any

FILE_PREFIX = "file-"
BATCH_PREFIX = "batch_"
LINE_PREFIX = "batch_req_"


def public_id(prefix: str, pk: Any) -> str:
    return prefix + uuid.UUID(str(pk)).hex


def pk_of(prefix: str, value: str) -> uuid.UUID | None:
    """The row id inside a public id, or None when it is not one of ours."""
    if not value.startswith(prefix):
        return None
    try:
        return uuid.UUID(hex=value.removeprefix(prefix))
    except ValueError:
        return None
