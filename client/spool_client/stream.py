"""A job's event stream: typed or raw, sync or async, resumed after a dropped connection."""

from __future__ import annotations

import asyncio
import codecs
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable, Iterator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import httpx

from spool_client.errors import SpoolError
from spool_client.events import ContentDelta, Error, Event, EventAssembler, Result
from spool_client.sse import ServerSentEvent, aparse, parse

if TYPE_CHECKING:
    from spool_client.client import Spool

# What a dropped or stalled connection raises; worth a reconnect, unlike a 4xx answer.
TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
MAX_DELAY_SECONDS = 10.0


class _Retry(Exception):
    """The server answered with a failure worth retrying (5xx, 429, or a failed stream)."""

    def __init__(self, error: SpoolError) -> None:
        super().__init__(error.message)
        self.error = error


class _Resume:
    """Where a stream is, so that a new connection goes on exactly after the last event seen.

    Chunk events carry their sequence number as the SSE id: one at or below the last seen is a
    repeat and is dropped. The id-less events after the last chunk (result, done) are dropped
    when already seen since that chunk, so a cut between them repeats nothing either."""

    def __init__(self, after: int, *, max_retries: int, backoff: float) -> None:
        self.last = after
        self._tail: set[str] = set()
        self._failures = 0
        self._max_retries = max_retries
        self._backoff = backoff

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last >= 0:
            headers["Last-Event-ID"] = str(self.last)
        return headers

    def accept(self, sse: ServerSentEvent) -> bool:
        if sse.comment is None:
            if sse.id is not None:
                seq = int(sse.id)
                if seq <= self.last:
                    return False
                self.last = seq
                self._tail.clear()
            elif sse.event in self._tail:
                return False
            else:
                self._tail.add(sse.event)
        self._failures = 0  # the connection works: a later drop gets a fresh set of retries
        return True

    def delay(self, cause: BaseException) -> float:
        """Seconds to wait before reconnecting; raises once the retries are used up."""
        self._failures += 1
        if self._failures > self._max_retries:
            if isinstance(cause, SpoolError):
                raise cause
            raise SpoolError(
                f"The event stream was lost and could not be resumed: {cause!r}", code="connection_lost"
            ) from cause
        return min(self._backoff * 2 ** (self._failures - 1), MAX_DELAY_SECONDS)


def _stream_failure(sse: ServerSentEvent) -> SpoolError | None:
    """An id-less error event is the server's stream failing, not the job: reconnect."""
    if sse.event == "error" and sse.id is None and sse.comment is None:
        return SpoolError.from_envelope(sse.json())
    return None


def _check(response: httpx.Response) -> None:
    if response.status_code == 200:
        return
    error = SpoolError.from_response(response)
    if response.status_code >= 500 or response.status_code == 429:
        raise _Retry(error)  # an outage or a rate limit passes; the backoff waits it out
    raise error


def _ended_early() -> SpoolError:
    return SpoolError("The event stream ended before its done event.", code="stream_ended")


def _decoded(pieces: Iterable[bytes]) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    for piece in pieces:
        text = decoder.decode(piece)
        if text:
            yield text


async def _adecoded(pieces: AsyncIterable[bytes]) -> AsyncGenerator[str, None]:
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    async for piece in pieces:
        text = decoder.decode(piece)
        if text:
            yield text


class JobStream:
    """A job's events from sequence number `after` on (-1: from the start). Each iteration opens
    its own connection and replays from that point: the log never changes, so it is the same."""

    def __init__(
        self, spool: Spool, job_id: str, *, after: int = -1, job: dict[str, Any] | None = None
    ) -> None:
        self.spool = spool
        self.id = job_id
        self.after = after
        self.job = job  # the job as created, when this stream started it

    def __repr__(self) -> str:
        return f"<JobStream {self.id} after={self.after}>"

    def _resume(self) -> _Resume:
        return _Resume(self.after, max_retries=self.spool.max_retries, backoff=self.spool.retry_backoff)

    # ---- raw events ----------------------------------------------------------------------

    def iter_sse(self) -> Iterator[ServerSentEvent]:
        """The server's events (and keep-alive comments) once each, across reconnects."""
        resume = self._resume()
        url = self.spool.url(f"/v1/jobs/{self.id}/events")
        while True:
            try:
                with self.spool.http.stream(
                    "GET", url, headers=self.spool.headers(resume.headers())
                ) as response:
                    if response.status_code != 200:
                        response.read()
                        _check(response)
                    for sse in parse(_decoded(response.iter_bytes())):
                        failure = _stream_failure(sse)
                        if failure is not None:
                            raise _Retry(failure)
                        if resume.accept(sse):
                            yield sse
                            if sse.event == "done":
                                return
                cause: BaseException = _ended_early()
            except TRANSIENT as exc:
                cause = exc
            except _Retry as exc:
                cause = exc.error
            time.sleep(resume.delay(cause))

    async def async_iter_sse(self) -> AsyncGenerator[ServerSentEvent, None]:
        resume = self._resume()
        url = self.spool.url(f"/v1/jobs/{self.id}/events")
        while True:
            try:
                http = self.spool.async_http()
                async with http.stream("GET", url, headers=self.spool.headers(resume.headers())) as response:
                    if response.status_code != 200:
                        await response.aread()
                        _check(response)
                    async with aclosing(aparse(_adecoded(response.aiter_bytes()))) as events:
                        async for sse in events:
                            failure = _stream_failure(sse)
                            if failure is not None:
                                raise _Retry(failure)
                            if resume.accept(sse):
                                yield sse
                                if sse.event == "done":
                                    return
                cause: BaseException = _ended_early()
            except TRANSIENT as exc:
                cause = exc
            except _Retry as exc:
                cause = exc.error
            await asyncio.sleep(resume.delay(cause))

    def iter_events(self) -> Iterator[str]:
        """The events as SSE text, ready to send on (e.g. a Django StreamingHttpResponse). Ids
        are the job's sequence numbers, so a proxied client can resume with Last-Event-ID too."""
        for sse in self.iter_sse():
            yield sse.encode()

    async def async_iter_events(self) -> AsyncGenerator[str, None]:
        async with aclosing(self.async_iter_sse()) as events:
            async for sse in events:
                yield sse.encode()

    # ---- typed events --------------------------------------------------------------------

    def iter(self) -> Iterator[Event]:
        assembler = EventAssembler()
        for sse in self.iter_sse():
            yield from assembler.feed(sse)

    async def async_iter(self) -> AsyncGenerator[Event, None]:
        assembler = EventAssembler()
        async with aclosing(self.async_iter_sse()) as events:
            async for sse in events:
                for event in assembler.feed(sse):
                    yield event

    def __iter__(self) -> Iterator[Event]:
        return self.iter()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self.async_iter()

    # ---- conveniences ----------------------------------------------------------------------

    def text(self) -> str:
        """Choice 0's content, once the job ended; raises SpoolError if it failed or was cancelled."""
        return _text(self.iter())

    async def async_text(self) -> str:
        parts: list[str] = []
        async with aclosing(self.async_iter()) as events:
            async for event in events:
                _collect(event, parts)
        return "".join(parts)

    def result(self) -> Result:
        """The final job, waiting for it to end (without reading the chunks)."""
        return Result(self.spool.wait(self.id))

    async def async_result(self) -> Result:
        return Result(await self.spool.async_wait(self.id))

    def cancel(self) -> dict[str, Any]:
        return self.spool.cancel(self.id)

    async def async_cancel(self) -> dict[str, Any]:
        return await self.spool.async_cancel(self.id)


def _collect(event: Event, parts: list[str]) -> None:
    if isinstance(event, ContentDelta) and event.choice == 0:
        parts.append(event.text)
    elif isinstance(event, Error):
        raise SpoolError(event.message, code=event.code)


def _text(events: Iterator[Event]) -> str:
    parts: list[str] = []
    for event in events:
        _collect(event, parts)
    return "".join(parts)
