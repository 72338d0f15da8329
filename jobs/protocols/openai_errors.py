"""OpenAI's error envelope and the error types a job's failure maps to."""

from __future__ import annotations

from typing import Any

INVALID_REQUEST = "invalid_request_error"
SERVER_ERROR = "server_error"

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


def stream_error_type(code: str) -> str:
    return INVALID_REQUEST if JOB_ERROR_STATUS.get(code, 500) < 500 else SERVER_ERROR
