"""The fake server itself: minimal asyncio HTTP/1.1, routing, faults and the request record."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import http
import json
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fakeupstream import scenarios

_MAX_BODY = 32 * 1024 * 1024


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def keep_alive(self) -> bool:
        return self.headers.get("connection", "").lower() != "close"


@dataclass(slots=True)
class Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    open: bool = True

    def gone(self) -> bool:
        return self.reader.at_eof() or self.writer.is_closing()


@dataclass
class Slots:
    """Requests of one scope (the whole server, or one model string) being answered at once: a
    model server with room for so many, answering 429 to the rest, as a rate-limited API does."""

    in_flight: int = 0
    max_in_flight: int = 0
    rejected_429: int = 0

    def take(self) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def reset(self) -> None:
        self.max_in_flight, self.rejected_429 = self.in_flight, 0


@dataclass
class Stats:
    requests: int = 0
    active_streams: int = 0
    max_active_streams: int = 0
    server: Slots = field(default_factory=Slots)
    models: dict[str, Slots] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "active_streams": self.active_streams,
            "max_active_streams": self.max_active_streams,
            **asdict(self.server),
            "models": {model: asdict(slots) for model, slots in self.models.items()},
        }

    def reset(self) -> None:
        """The counters start again; what is in flight stays counted."""
        self.requests = 0
        self.max_active_streams = self.active_streams
        self.server.reset()
        for slots in self.models.values():
            slots.reset()


class BadRequest(Exception):
    pass


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    line = await reader.readline()
    while line in (b"\r\n", b"\n"):
        line = await reader.readline()
    if not line:
        return None
    try:
        method, target, _version = line.decode("latin-1").split()
    except ValueError:
        raise BadRequest("bad request line") from None
    headers: dict[str, str] = {}
    while True:
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readline()
                break
            parts.append(await reader.readexactly(size))
            await reader.readline()
        body = b"".join(parts)
    else:
        length = int(headers.get("content-length") or 0)
        if length > _MAX_BODY:
            raise BadRequest("body too large")
        body = await reader.readexactly(length) if length else b""
    url = urlsplit(target)
    return Request(method.upper(), url.path, dict(parse_qsl(url.query)), headers, body)


def head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def error_body(status: int, message: str) -> dict[str, Any]:
    kind, code = {
        400: ("invalid_request_error", None),
        401: ("invalid_request_error", "invalid_api_key"),
        404: ("invalid_request_error", "not_found"),
        429: ("requests", "rate_limit_exceeded"),
    }.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class FakeUpstream:
    """One server instance: its request record, per-key attempt counters and stream stats.
    max_concurrency: requests answered at once across every model (0: no limit); the rest get
    429 with Retry-After `limit_retry_after` seconds."""

    def __init__(
        self,
        api_key: str | None = None,
        record_limit: int = 1000,
        max_concurrency: int = 0,
        limit_retry_after: float = 1.0,
    ) -> None:
        self.api_key = api_key
        self.max_concurrency = max_concurrency
        self.limit_retry_after = limit_retry_after
        self.records: collections.deque[dict[str, Any]] = collections.deque(maxlen=record_limit)
        self.attempts: collections.Counter[str] = collections.Counter()
        self.stats = Stats()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._next_id = 0
        # Seeded: a run's lengths are the same every time the server starts.
        self._lengths = random.Random(0)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._handle, host, port, backlog=2048)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- connection loop -------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        conn = Conn(reader, writer)
        try:
            while conn.open:
                try:
                    request = await read_request(reader)
                except BadRequest as exc:
                    await self._json(conn, 400, error_body(400, str(exc)), keep_alive=False)
                    break
                if request is None:
                    break
                await self._route(conn, request)
                if not request.keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away: nothing to answer
        except asyncio.CancelledError:
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def _json(
        self,
        conn: Conn,
        status: int,
        obj: Any,
        *,
        headers: dict[str, str] | None = None,
        keep_alive: bool = True,
    ) -> None:
        data = json.dumps(obj, ensure_ascii=False).encode()
        base = {
            "content-type": "application/json",
            "content-length": str(len(data)),
            "connection": "keep-alive" if keep_alive else "close",
        }
        conn.writer.write(head(status, {**base, **(headers or {})}) + data)
        await conn.writer.drain()
        if not keep_alive:
            conn.open = False

    async def _route(self, conn: Conn, request: Request) -> None:
        self.stats.requests += 1
        path = request.path.rstrip("/")
        if path.startswith("/v1/"):
            path = path[3:]
        if path == "/models" and not self._authorized(request):
            await self._json(conn, 401, error_body(401, "Incorrect API key provided."))
        elif path == "/models" and request.method == "GET":
            data = [
                {"id": s, "object": "model", "created": 0, "owned_by": "fakeupstream"}
                for s in scenarios.SCENARIOS
            ]
            await self._json(conn, 200, {"object": "list", "data": data})
        elif path == "/chat/completions" and request.method == "POST":
            await self._chat(conn, request)
        elif path == "/completions" and request.method == "POST":
            await self._chat(conn, request, legacy=True)
        elif path == "/embeddings" and request.method == "POST":
            await self._embeddings(conn, request)
        elif path == "/_requests" and request.method == "GET":
            key = request.query.get("key")
            rows = [r for r in self.records if key is None or r["key"] == key]
            await self._json(conn, 200, rows)
        elif path == "/_requests" and request.method == "DELETE":
            self.records.clear()
            self.attempts.clear()
            await self._json(conn, 200, {"ok": True})
        elif path == "/_stats" and request.method == "GET":
            await self._json(conn, 200, self.stats.as_json())
        elif path == "/_stats" and request.method == "DELETE":
            self.stats.reset()
            await self._json(conn, 200, {"ok": True})
        elif path == "/health":
            await self._json(conn, 200, {"ok": True})
        else:
            message = f"No route for {request.method} {request.path}"
            await self._json(conn, 404, error_body(404, message))

    def _varied(self, tokens: int, spread: float) -> int:
        return max(1, round(tokens * self._lengths.uniform(1 - spread, 1 + spread)))

    def _authorized(self, request: Request) -> bool:
        if not self.api_key:
            return True
        return request.headers.get("authorization") == f"Bearer {self.api_key}"

    # -- chat completions ------------------------------------------------------------------

    async def _chat(self, conn: Conn, request: Request, legacy: bool = False) -> None:
        run = await self._begin(conn, request, legacy)
        if run is not None:
            await self._within_limits(run, run.go)

    async def _embeddings(self, conn: Conn, request: Request) -> None:
        run = await self._begin(conn, request)
        if run is not None:
            await self._within_limits(run, run.embeddings)

    async def _within_limits(self, run: _Run, answer: Callable[[], Awaitable[None]]) -> None:
        """Answers the run if the server and its model have a free slot, else 429 at once."""
        model = str(run.body.get("model") or "fake")
        per_model = int(run.params.get("max_concurrency") or 0)
        scopes = [(self.stats.server, self.max_concurrency)]
        if per_model:
            scopes.append((self.stats.models.setdefault(model, Slots()), per_model))
        full = [slots for slots, limit in scopes if limit and slots.in_flight >= limit]
        if full:
            for slots in full:
                slots.rejected_429 += 1
            retry_after = run.params.get("retry_after") or f"{self.limit_retry_after:g}"
            run.record["status"] = "failed 429"
            message = "fakeupstream: too many requests at once; retry later"
            await self._json(run.conn, 429, error_body(429, message), headers={"retry-after": retry_after})
            return
        for slots, _ in scopes:
            slots.take()
        run.record["began_at"] = time.time()
        try:
            await answer()
        finally:
            run.record["ended_at"] = time.time()
            for slots, _ in scopes:
                slots.in_flight -= 1

    async def _begin(self, conn: Conn, request: Request, legacy: bool = False) -> _Run | None:
        """Reads, records and authorizes a POST to a model; the run that answers it, or None when
        it has been answered already (bad JSON, wrong key). legacy: a /completions request, played
        as the chat scenario of its prompt."""
        try:
            body = json.loads(request.body or b"{}")
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
        except ValueError as exc:
            await self._json(conn, 400, error_body(400, f"Invalid JSON body: {exc}"))
            return None
        model = str(body.get("model") or "fake")
        scenario, params = scenarios.parse_model(model)
        # Headers give defaults (an engine config can set them once); the model string wins.
        header_params = {
            k[len("x-fake-") :].replace("-", "_"): v
            for k, v in request.headers.items()
            if k.startswith("x-fake-")
        }
        params = {**header_params, **params}
        if params.get("vary"):
            params["tokens"] = str(self._varied(int(params.get("tokens", 16)), float(params["vary"])))
        key = params.get("key") or model + "|" + json.dumps(header_params, sort_keys=True)
        self.attempts[key] += 1
        attempt = self.attempts[key]
        self._next_id += 1
        record = {
            "id": self._next_id,
            "key": key,
            "attempt": attempt,
            "method": request.method,
            "path": request.path,
            "headers": request.headers,
            "body": body,
            "status": "received",
            "events_sent": 0,
        }
        self.records.append(record)
        if not self._authorized(request):
            record["status"] = "failed 401"
            await self._json(conn, 401, error_body(401, "Incorrect API key provided."))
            return None
        run = _Run(
            self, conn, scenarios.chat_body(body) if legacy else body, scenario, params, record, legacy
        )
        run.faulty = "fail_times" not in params or attempt <= int(params["fail_times"])
        return run


@dataclass
class _Run:
    """One chat completion request being answered."""

    server: FakeUpstream
    conn: Conn
    body: dict[str, Any]
    scenario: str
    params: dict[str, str]
    record: dict[str, Any]
    legacy: bool = False  # /completions: the chat script's payloads in text_completion form
    faulty: bool = True
    sent: int = field(default=0)

    def fault(self, name: str) -> int | None:
        value = self.params.get(name)
        return int(value) if self.faulty and value not in (None, "") else None

    async def _failed_or_waited(self) -> bool:
        """Answers an injected failure (True), or waits the time to first byte (False)."""
        fail = self.fault("fail")
        if fail is not None:
            headers = {}
            if "retry_after" in self.params:
                headers["retry-after"] = self.params["retry_after"]
            message = self.params.get("message") or f"fakeupstream: injected {fail} failure"
            self.record["status"] = f"failed {fail}"
            await self.server._json(self.conn, fail, error_body(fail, message), headers=headers)
            return True
        if float(self.params.get("ttfb", 0)) > 0:
            await asyncio.sleep(float(self.params["ttfb"]))
        return False

    async def embeddings(self) -> None:
        if await self._failed_or_waited():
            return
        try:
            answer = scenarios.embeddings(self.body, self.params)
        except ValueError as exc:
            self.record["status"] = "failed 400"
            await self.server._json(self.conn, 400, error_body(400, str(exc)))
            return
        await self._whole(answer)

    async def _whole(self, answer: dict[str, Any]) -> None:
        """A whole JSON answer; under drop_after, a connection closed before any of it."""
        if self.fault("drop_after") is not None:
            self.conn.writer.close()
            self.conn.open = False
            self.record["status"] = "dropped"
            return
        self.record["status"] = "done"
        await self.server._json(self.conn, 200, answer)

    async def go(self) -> None:
        if await self._failed_or_waited():
            return
        stream = bool(self.body.get("stream")) and self.params.get("ignore_stream") != "1"
        body = self.body
        if not stream and self.params.get("usage", "1") != "0":
            body = {**body, "stream_options": {"include_usage": True}}
        try:
            script = scenarios.script(self.scenario, self.params, body)
        except KeyError:
            message = f"The model {self.body.get('model')!r} does not exist."
            await self.server._json(self.conn, 404, error_body(404, message))
            return
        if self.legacy:
            script = scenarios.legacy(script)
        payloads = script.payloads
        paced = script.paced
        if self.fault("no_finish") is not None:
            kept = [i for i, p in enumerate(payloads) if not scenarios.has_finish(p)]
            payloads, paced = [payloads[i] for i in kept], [paced[i] for i in kept]
        if stream:
            await self._stream(payloads, paced)
        else:
            if self.legacy:
                await self._whole(scenarios.legacy_aggregate(payloads))
            else:
                await self._whole(scenarios.aggregate(payloads, self.body, self.params))

    async def _stream(self, payloads: list[str], paced: list[bool]) -> None:
        writer = self.conn.writer
        writer.write(
            head(
                200,
                {
                    "content-type": "text/event-stream; charset=utf-8",
                    "cache-control": "no-cache",
                    "transfer-encoding": "chunked",
                    "connection": "keep-alive",
                },
            )
        )
        stats = self.server.stats
        stats.active_streams += 1
        stats.max_active_streams = max(stats.max_active_streams, stats.active_streams)
        self.record["status"] = "streaming"
        try:
            await self._events(payloads, paced)
        finally:
            stats.active_streams -= 1

    async def _write(self, text: str) -> None:
        data = text.encode()
        self.conn.writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        await self.conn.writer.drain()

    async def _events(self, payloads: list[str], paced: list[bool]) -> None:
        tps = float(self.params.get("tps", 0))
        keepalive = self.params.get("keepalive") == "1"
        # Paced tokens follow a fixed schedule (token i is due i/tps after the stream starts),
        # as a model server's tokens come at its own pace whatever its process is doing: a
        # sleep of 1/tps after each write would add this loop's lag to every token, so a busy
        # machine would slow the stand-in itself, and the benchmark would read that as Spool's.
        due: float | None = None
        done = False
        for payload, is_token in zip(payloads, paced, strict=True):
            if self.sent == self.fault("drop_after"):
                # Close without the terminating chunk: the client sees a truncated body.
                self.record["status"] = "dropped"
                self.conn.writer.close()
                self.conn.open = False
                return
            if self.sent == self.fault("stall_after"):
                self.record["status"] = "stalled"
                if await self._stall(float(self.params.get("stall", 30))):
                    return
                self.record["status"] = "streaming"
                due = None  # after a stall the pace resumes; the missed tokens do not burst
            if self.sent == self.fault("error_after"):
                error = error_body(500, self.params.get("message") or "fakeupstream: injected error")
                await self._write("data: " + json.dumps(error) + "\n\n")
                break
            if self.sent == self.fault("bad_json_after"):
                await self._write('data: {"id": "chatcmpl-broken", "choices": [{"ind\n\n')
                break
            if is_token and tps > 0:
                now = asyncio.get_running_loop().time()
                due = (now if due is None else due) + 1 / tps
                if due > now:
                    await asyncio.sleep(due - now)
            if self.conn.gone():
                self._disconnected()
                return
            if keepalive:
                await self._write(": keep-alive\n\n")
            try:
                await self._write(f"data: {payload}\n\n")
            except ConnectionError:
                self._disconnected()
                return
            if payload == "[DONE]":
                done = True
                break
            self.sent += 1
            self.record["events_sent"] = self.sent
        if not done:
            await self._write("data: [DONE]\n\n")
        self.conn.writer.write(b"0\r\n\r\n")
        await self.conn.writer.drain()
        self.record["status"] = "done"

    async def _stall(self, seconds: float) -> bool:
        """Go silent; True when the client hung up meanwhile (then the stream is over)."""
        try:
            data = await asyncio.wait_for(self.conn.reader.read(1), timeout=seconds)
        except TimeoutError:
            return False
        if not data:
            self._disconnected()
            return True
        return False

    def _disconnected(self) -> None:
        self.record["status"] = "disconnected"
        self.conn.open = False


async def serve(
    host: str = "127.0.0.1", port: int = 9100, api_key: str | None = None, max_concurrency: int = 0
) -> None:
    server = FakeUpstream(api_key=api_key, max_concurrency=max_concurrency)
    bound = await server.start(host, port)
    print(f"fakeupstream listening on http://{host}:{bound}/v1", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


@contextlib.contextmanager
def running(
    port: int = 0, host: str = "127.0.0.1", api_key: str | None = None, max_concurrency: int = 0
) -> Iterator[str]:
    """Run a server on a background thread; yields its base URL "http://127.0.0.1:PORT/v1"."""
    server = FakeUpstream(api_key=api_key, max_concurrency=max_concurrency)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    outcome: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            outcome["port"] = loop.run_until_complete(server.start(host, port))
        except BaseException as exc:  # reported to the caller's thread below
            outcome["error"] = exc
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
            loop.run_until_complete(server.stop())
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="fakeupstream", daemon=True)
    thread.start()
    ready.wait()
    if "error" in outcome:
        raise outcome["error"]
    try:
        yield f"http://{host}:{outcome['port']}/v1"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
