"""OpenAI face errors beyond the common vocabulary: 404s."""

from __future__ import annotations

from jobs.faces.common.errors import FaceError
from jobs.protocols.openai_errors import error_body, stream_error_type

__all__ = ["FaceError", "error_body", "not_found", "stream_error_type"]


def not_found(message: str) -> FaceError:
    return FaceError(message, status=404, code="not_found", retry=False)
