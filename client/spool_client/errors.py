"""SpoolError: what the server's error envelope, or a stream that could not be resumed, becomes."""

from __future__ import annotations

from typing import Any

import httpx


class SpoolError(RuntimeError):
    """An error the server reported ({"error": {"message", "type", "param", "code"}}), a job that
    failed, or a connection lost for good. A RuntimeError, as ai-server-sdk raises."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        type: str | None = None,
        param: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.type = type
        self.param = param
        self.status_code = status_code

    @classmethod
    def from_envelope(cls, body: Any, *, status_code: int | None = None) -> SpoolError:
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            text = body if isinstance(body, str) else repr(body)
            return cls(f"HTTP {status_code}: {text[:300]}", status_code=status_code)
        return cls(
            str(error.get("message") or "Unknown error"),
            code=error.get("code"),
            type=error.get("type"),
            param=error.get("param"),
            status_code=status_code,
        )

    @classmethod
    def from_response(cls, response: httpx.Response) -> SpoolError:
        """The response must have been read."""
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        return cls.from_envelope(body, status_code=response.status_code)
