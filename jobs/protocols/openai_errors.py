"""OpenAI's error envelope and the error types a job's failure maps to."""

from __future__ import annotations

from typing import Any

INVALID_REQUEST = "invalid_request_error"
SERVER_ERROR = "server_error"
RATE_LIMIT = "rate_limit_error"

# How a job that ended in error before any output maps onto an HTTP status.
JOB_ERROR_STATUS = {
    "unsupported_parameter": 400,
    "cancelled": 409,
    "timeout": 504,
    "upstream_timeout": 504,
    "upstream_error": 502,
    "engine_unavailable": 503,
    # It waited past its queue timeout for a slot of its engine: a deadline exceeded, as
    # gRPC's DEADLINE_EXCEEDED maps onto HTTP.
    "expired": 504,
}


def error_body(
    message: str, *, type: str = INVALID_REQUEST, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_type(status: int) -> str:
    """The envelope's `type` for an HTTP status, as OpenAI answers."""
    if status == 429:
        return RATE_LIMIT
    return SERVER_ERROR if status >= 500 else INVALID_REQUEST


def stream_error_type(code: str) -> str:
    return error_type(JOB_ERROR_STATUS.get(code, 500))
