"""OpenAI face errors beyond the common vocabulary: a job's failure as an HTTP error, 404s."""

from __future__ import annotations

from typing import Any

from jobs.faces.common.errors import FaceError
from jobs.protocols.openai_errors import JOB_ERROR_STATUS, error_body, stream_error_type

__all__ = ["FaceError", "error_body", "job_error", "not_found", "stream_error_type"]


def job_error(data: dict[str, Any]) -> FaceError:
    """The error a job ended with (the terminal chunk's data), as an HTTP error."""
    code = data.get("code") or "engine_error"
    status = JOB_ERROR_STATUS.get(code, 500)
    return FaceError(
        data.get("message") or "The generation failed.",
        status=status,
        code=code,
        type=stream_error_type(code),
        # The engine has already retried what was worth retrying; another attempt by the SDK
        # would only run the whole job again.
        retry=False,
    )


def not_found(message: str) -> FaceError:
    return FaceError(message, status=404, code="not_found", retry=False)
