"""Spool: the connection to a server's /v1/jobs API, with sync and async methods."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

import httpx

from spool_client.errors import SpoolError
from spool_client.stream import JobStream

__version__ = "0.1.0"

# Reads wait up to a minute: a long-poll waits at most 30 s, and an idle event stream gets a
# keep-alive every 10 s, so a longer silence means the connection is gone.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, read=60.0)
# GET /v1/jobs/{id}?wait= takes at most this many seconds per call.
MAX_WAIT_SECONDS = 30.0
FINISHED = frozenset({"succeeded", "failed", "cancelled"})


def _body(response: httpx.Response) -> dict[str, Any]:
    if response.is_success:
        return response.json()
    raise SpoolError.from_response(response)


def job_body(
    engine: str,
    command: str | None = None,
    *,
    messages: list[dict[str, Any]] | None = None,
    context: str | None = None,
    parameters: dict[str, Any] | None = None,
    store: bool | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The POST /v1/jobs body; fields left as None are not sent."""
    fields = {
        "engine": engine,
        "command": command,
        "messages": messages,
        "context": context,
        "parameters": parameters,
        "store": store,
        "metadata": metadata,
    }
    return {name: value for name, value in fields.items() if value is not None}


def _page_params(
    batch: str | None, status: str | None, after: str | None, limit: int | None, order: str
) -> dict[str, Any]:
    given = {"batch": batch, "status": status, "after": after, "limit": limit, "order": order}
    return {name: value for name, value in given.items() if value is not None}


def _embeddings_body(engine: str, input: str | list[Any], parameters: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"engine": engine, "input": input}
    if parameters:
        body["parameters"] = parameters
    return body


class Spool:
    """A Spool server. `base_url` is its root (e.g. http://127.0.0.1:8000); `api_key` a secret key.

    The last Spool made is the default a ModelEngine uses, as ai-server-sdk's ServerClient is.
    Event streams reconnect after a dropped connection up to `max_retries` times in a row,
    waiting `retry_backoff` seconds, doubling each time."""

    _default: ClassVar[Spool | None] = None

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        max_retries: int = 5,
        retry_backoff: float = 0.5,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self._api_key = api_key
        self._timeout = timeout
        self._http = http_client
        self._given_async = async_http_client
        # An AsyncClient's connections belong to one event loop: one client per loop.
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
        Spool._default = self

    @classmethod
    def default(cls) -> Spool:
        if cls._default is None:
            raise SpoolError("No Spool yet: create Spool(base_url, api_key) first.", code="no_client")
        return cls._default

    def __repr__(self) -> str:
        return f"<Spool {self.base_url}>"

    # ---- plumbing ----------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.base_url + path

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._api_key}",
            "User-Agent": f"spool-client/{__version__}",
            **(extra or {}),
        }

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(timeout=self._timeout)
        return self._http

    def async_http(self) -> httpx.AsyncClient:
        if self._given_async is not None:
            return self._given_async
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None or client.is_closed:
            client = self._async[loop] = httpx.AsyncClient(timeout=self._timeout)
        return client

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return _body(self.http.request(method, self.url(path), headers=self.headers(), **kwargs))

    async def _acall(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return _body(
            await self.async_http().request(method, self.url(path), headers=self.headers(), **kwargs)
        )

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    async def aclose(self) -> None:
        client = self._async.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Spool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
        self.close()

    # ---- jobs ------------------------------------------------------------------------------

    def create_job(self, engine: str, command: str | None = None, **fields: Any) -> dict[str, Any]:
        """Start a job; returns it at once (status "queued"). `engine` is an engine id or name;
        give `command` (one user message) or `messages=[...]`, and optionally `context` (a
        system prompt), `parameters` (OpenAI names), `store`, `metadata`."""
        return self._call("POST", "/v1/jobs", json=job_body(engine, command, **fields))

    async def async_create_job(
        self, engine: str, command: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        return await self._acall("POST", "/v1/jobs", json=job_body(engine, command, **fields))

    def stream(self, engine: str, command: str | None = None, **fields: Any) -> JobStream:
        """Start a job and return its event stream (nothing is read until it is iterated)."""
        job = self.create_job(engine, command, **fields)
        return JobStream(self, job["id"], job=job)

    async def async_stream(self, engine: str, command: str | None = None, **fields: Any) -> JobStream:
        job = await self.async_create_job(engine, command, **fields)
        return JobStream(self, job["id"], job=job)

    def events(self, job_id: str, *, after: int = -1) -> JobStream:
        """The event stream of an existing job, after sequence number `after`."""
        return JobStream(self, job_id, after=after)

    def job(self, job_id: str, *, wait: float = 0.0) -> dict[str, Any]:
        """The job; with `wait`, waits up to that many seconds (at most 30) for it to end."""
        return self._call("GET", f"/v1/jobs/{job_id}", params={"wait": wait} if wait else None)

    async def async_job(self, job_id: str, *, wait: float = 0.0) -> dict[str, Any]:
        return await self._acall("GET", f"/v1/jobs/{job_id}", params={"wait": wait} if wait else None)

    def wait(self, job_id: str, *, timeout: float | None = None) -> dict[str, Any]:
        """The job once it has ended (or as it is when `timeout` seconds have passed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = MAX_WAIT_SECONDS if deadline is None else max(0.0, deadline - time.monotonic())
            job = self.job(job_id, wait=min(MAX_WAIT_SECONDS, left))
            if job["status"] in FINISHED or left <= 0:
                return job

    async def async_wait(self, job_id: str, *, timeout: float | None = None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = MAX_WAIT_SECONDS if deadline is None else max(0.0, deadline - time.monotonic())
            job = await self.async_job(job_id, wait=min(MAX_WAIT_SECONDS, left))
            if job["status"] in FINISHED or left <= 0:
                return job

    def chunks(self, job_id: str, *, after: int = -1, wait: float = 0.0) -> dict[str, Any]:
        """One long-poll: the chunks after sequence number `after`, waiting up to `wait` seconds."""
        return self._call("GET", f"/v1/jobs/{job_id}/chunks", params={"after": after, "wait": wait})

    async def async_chunks(self, job_id: str, *, after: int = -1, wait: float = 0.0) -> dict[str, Any]:
        return await self._acall("GET", f"/v1/jobs/{job_id}/chunks", params={"after": after, "wait": wait})

    def jobs(
        self,
        *,
        batch: str | None = None,
        status: str | None = None,
        after: str | None = None,
        limit: int | None = None,
        order: str = "desc",
    ) -> dict[str, Any]:
        """One page of your jobs, newest first: {"object": "list", "data": [job, ...],
        "first_id", "last_id", "has_more"}. `batch` keeps a Batch API batch's jobs (one per
        line), `status` those in one state; give the page's `last_id` as `after` for the next."""
        return self._call("GET", "/v1/jobs", params=_page_params(batch, status, after, limit, order))

    async def async_jobs(
        self,
        *,
        batch: str | None = None,
        status: str | None = None,
        after: str | None = None,
        limit: int | None = None,
        order: str = "desc",
    ) -> dict[str, Any]:
        return await self._acall("GET", "/v1/jobs", params=_page_params(batch, status, after, limit, order))

    def iter_jobs(
        self, *, batch: str | None = None, status: str | None = None, order: str = "desc"
    ) -> Iterator[dict[str, Any]]:
        """Every job `jobs` lists, page after page, as they are read."""
        after = None
        while True:
            page = self.jobs(batch=batch, status=status, after=after, limit=100, order=order)
            yield from page["data"]
            if not page["has_more"]:
                return
            after = page["last_id"]

    async def async_iter_jobs(
        self, *, batch: str | None = None, status: str | None = None, order: str = "desc"
    ) -> AsyncIterator[dict[str, Any]]:
        after = None
        while True:
            page = await self.async_jobs(batch=batch, status=status, after=after, limit=100, order=order)
            for job in page["data"]:
                yield job
            if not page["has_more"]:
                return
            after = page["last_id"]

    # ---- embeddings ------------------------------------------------------------------------

    def embeddings(self, engine: str, input: str | list[Any], **parameters: Any) -> dict[str, Any]:
        """Embed a text, texts, or token id arrays with an engine, answered at once: {"object":
        "embeddings", "engine", "embeddings" (one per input), "dimensions", "usage"}. Parameters:
        dimensions, user, encoding_format ("float", or "base64" for float32 strings)."""
        return self._call("POST", "/v1/jobs/embeddings", json=_embeddings_body(engine, input, parameters))

    async def async_embeddings(
        self, engine: str, input: str | list[Any], **parameters: Any
    ) -> dict[str, Any]:
        return await self._acall(
            "POST", "/v1/jobs/embeddings", json=_embeddings_body(engine, input, parameters)
        )

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel the job (harmless once it ended); returns the job."""
        return self._call("POST", f"/v1/jobs/{job_id}/cancel")

    async def async_cancel(self, job_id: str) -> dict[str, Any]:
        return await self._acall("POST", f"/v1/jobs/{job_id}/cancel")
