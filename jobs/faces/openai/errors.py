"""The one place that renders OpenAI's error envelope {"error": {message, type, param, code}}."""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse

from jobs.params import ParamError

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
}


def error_body(
    message: str, *, type: str = INVALID_REQUEST, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class ApiError(Exception):
    """Raised anywhere in the face; the view turns it into the envelope with this status."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        retry: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message, self.status, self.param, self.code = message, status, param, code
        self.type = type or (SERVER_ERROR if status >= 500 else INVALID_REQUEST)
        self.retry = retry
        self.headers: dict[str, str] = {}

    @classmethod
    def from_param(cls, exc: ParamError) -> ApiError:
        return cls(exc.message, param=exc.param, code=exc.code)

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)

    def response(self) -> JsonResponse:
        response = JsonResponse(self.body(), status=self.status)
        if self.retry is not None:
            # The SDK obeys this header; without it, it would retry 409s and 5xx by itself.
            response["x-should-retry"] = "true" if self.retry else "false"
        for name, value in self.headers.items():
            response[name] = value
        return response


def job_error(data: dict[str, Any]) -> ApiError:
    """The error a job ended with (the terminal chunk's data), as an HTTP error."""
    code = data.get("code") or "engine_error"
    status = JOB_ERROR_STATUS.get(code, 500)
    return ApiError(
        data.get("message") or "The generation failed.",
        status=status,
        code=code,
        type=stream_error_type(code),
        # The engine has already retried what was worth retrying; another attempt by the SDK
        # would only run the whole job again.
        retry=False,
    )


def stream_error_type(code: str) -> str:
    return INVALID_REQUEST if JOB_ERROR_STATUS.get(code, 500) < 500 else SERVER_ERROR


def not_found(message: str) -> ApiError:
    return ApiError(message, status=404, code="not_found", retry=False)


def unauthorized(header: str) -> ApiError:
    if not header:
        message = (
            "You didn't provide an API key. You need to provide your API key in an Authorization "
            "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
        return ApiError(message, status=401, code=None, retry=False)
    token = header.split(" ", 1)[-1].strip()
    shown = f"{token[:3]}***{token[-4:]}" if len(token) > 8 else "***"
    return ApiError(
        f"Incorrect API key provided: {shown}. Create a key with `manage.py spool_key USERNAME`.",
        status=401,
        code="invalid_api_key",
        retry=False,
    )
