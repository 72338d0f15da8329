"""An engine that streams from any OpenAI-compatible chat completions server over HTTP."""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import functools
import json
import os
import random
import re
import ssl
import urllib.request
import weakref
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import certifi
import numpy as np
import orjson
from multidict import CIMultiDictProxy

from engine import toolparse
from engine.compat import mark_connector_closed
from engine.embeddings import EmbeddingRequest, Embeddings, EmbeddingsUnsupported
from engine.retry import retry_after_seconds
from engine.types import (
    CONTENT,
    FINISH,
    THINKING,
    TOOL,
    USAGE,
    Chunk,
    EngineError,
    GenerationRequest,
    UnsupportedParameter,
)

# A rough, tokenizer-free count used only when the upstream reports no usage: every run of word
# characters and every other non-space character counts as one token. It over-counts code and
# under-counts long words, and the usage chunk says "estimated" so nobody bills on it.
_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


# Why aiohttp, not httpx: CPU per delivered chunk of 100 streams on one loop (bench.upstream_cpu,
# the three one after the other, median of 3 runs, spread in brackets), at 100 tokens/s and at
# full speed:
#   httpx + httpcore on anyio, aiter_lines, json        97.0 (81.0-100.9) µs   19.8 (19.0-20.0) µs
#   httpx + httpcore on plain asyncio transports,
#     raw bytes split into SSE events here, orjson      57.3 (49.9-58.4) µs    14.0 (13.9-14.7) µs
#   aiohttp (C HTTP parser), same SSE split, orjson     23.3 (21.6-24.1) µs     5.7 (5.5-5.9) µs
# At a realistic pace every token is its own socket read, and httpcore pays per read a stack of
# async generators, h11's chunked parsing and map_exceptions context managers; aiohttp's parser
# runs in C inside data_received and a read of buffered bytes is one call.

# One session per event loop, shared by every engine and generation on it: a worker process runs
# all its generations on one loop, so this is one connection pool per process. Keyed by loop
# because an asyncio connection cannot move between loops (tests run a loop per test).
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
    weakref.WeakKeyDictionary()
)

# How long an idle connection is kept for the next generation (no new TCP or TLS handshake before
# its first token). aiohttp's pool takes and gives back a connection in O(1), so every idle one
# can be kept (httpcore's scanned them all on each request start and end, O(idle x all)).
_KEEPALIVE_SECONDS = 5.0


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """The certificates httpx trusted, so that no upstream that worked before stops working:
    SSL_CERT_FILE or SSL_CERT_DIR when set, else certifi's bundle (aiohttp alone would use the
    system's store, which slim images lack). Made once: loading the bundle takes milliseconds."""
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    return ssl.create_default_context(cafile=certifi.where())


def shared_client() -> aiohttp.ClientSession:
    """The HTTP session of the running event loop.

    It has no headers and no timeouts of any engine: every request passes its own. No connection
    cap: the worker's concurrency bounds it, and a capped pool would queue generations behind
    each other. Close it with close_shared_client() before its loop ends.
    """
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.closed:
        # A pool's idle connections refer to their loop, so the weak key alone never lets a
        # loop go: drop sessions whose loop ended without close_shared_client() (asyncio.run and
        # async_to_sync make a loop per call), and let the collector close their sockets.
        for ended in [other for other in _clients if other.is_closed()]:
            session = _clients.pop(ended)
            if session.connector is not None:
                # Only marks it closed (its loop is gone), so that it does not complain when
                # collected; there is no loop left to close its connections on.
                mark_connector_closed(session.connector)
        client = _clients[loop] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=_KEEPALIVE_SECONDS, ssl=_ssl_context()),
            # Proxies from the environment, as httpx honoured them. Only when some are set: with
            # trust_env aiohttp looks for them and for ~/.netrc on a thread for every request.
            trust_env=bool(urllib.request.getproxies()),
        )
    return client


async def close_shared_client() -> None:
    """Closes the running loop's session, for a worker shutting its loop down (and tests)."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.close()


@atexit.register
def _close_at_exit() -> None:
    """A worker's loop runs on a daemon thread until the process exits, and an aiohttp session
    that is never closed logs "Unclosed client session" as an error when collected. Close what
    is still open while the loops can still run (up to a second), else just mark it closed."""
    for loop, client in list(_clients.items()):
        if client.closed:
            continue
        if loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(client.close(), loop).result(timeout=1)
                continue
        if client.connector is not None and not client.connector.closed:
            mark_connector_closed(client.connector)  # closes no socket once its loop is gone
        client.detach()


# Told of every failed attempt that is about to be retried, with its code: the HTTP status
# ("429", "503") or "connect_timeout" / "connection_error", and the seconds the upstream asked us
# to wait (Retry-After), if it did. engine/ knows no metrics nor scheduling: the worker sets this
# to count them and to hold the engine's admissions (jobs/worker_hooks.py).
RetryListener = Callable[[str, float | None], None]
_retry_listener: RetryListener | None = None


def on_retry(listener: RetryListener | None) -> None:
    """Set (or, with None, clear) the one listener told of each retry."""
    global _retry_listener
    _retry_listener = listener


def estimate_tokens(text: str) -> int:
    return len(_TOKEN_RE.findall(text))


def _prompt_text(request: GenerationRequest, messages: list[dict[str, Any]]) -> str:
    parts: list[str] = list(request.prompt or [])
    for message in messages:
        parts.append(toolparse._text_of(message.get("content")))
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            parts += [function.get("name", ""), str(function.get("arguments", ""))]
    if request.tools:
        parts.append(json.dumps(request.tools))
    return "\n".join(parts)


def legacy_logprobs(legacy: dict[str, Any]) -> list[dict[str, Any]]:
    """A legacy completions server's logprobs (tokens, token_logprobs, top_logprobs) as the
    per-token entries of chat completions, which Spool's chunks carry."""
    tokens = legacy.get("tokens") or []
    scores = legacy.get("token_logprobs") or []
    tops = legacy.get("top_logprobs") or []
    entries = []
    for i, token in enumerate(tokens):
        alternatives = tops[i] if i < len(tops) and isinstance(tops[i], dict) else {}
        entries.append(
            {
                "token": token,
                "logprob": scores[i] if i < len(scores) else None,
                "bytes": list(str(token).encode()),
                "top_logprobs": [
                    {"token": t, "logprob": lp, "bytes": list(str(t).encode())}
                    for t, lp in alternatives.items()
                ],
            }
        )
    return entries


class _Retry(Exception):
    """A failure worth another attempt, if nothing was yielded yet; `code` names it for the
    retry listener (an HTTP status, or the kind of connection failure)."""

    def __init__(self, message: str, code: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


def _retry_after(headers: CIMultiDictProxy[str]) -> float | None:
    """Seconds the server asked us to wait (retry-after-ms, else Retry-After seconds or date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    return retry_after_seconds(headers.get("retry-after"))


def _error_message(body: bytes, reason: str | None) -> str:
    text = body.decode("utf-8", "replace")[:2000]
    try:
        error = json.loads(text).get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return text.strip() or reason or ""


@dataclass
class _Choice:
    finished: bool = False
    tools: dict[int, dict[str, Any]] = field(default_factory=dict)  # index -> pending first fragment
    announced: set[int] = field(default_factory=set)  # tool indexes whose first fragment is out
    last_tool: int = -1
    parser: toolparse.ToolCallParser | None = None
    output: list[str] = field(default_factory=list)  # for the usage estimate


class _Stream:
    """State of one attempt: turns upstream chunk objects into canonical chunks."""

    def __init__(self, text_tools: bool) -> None:
        self.text_tools = text_tools
        self.choices: dict[int, _Choice] = {}
        self.usage: dict[str, Any] | None = None

    def choice(self, index: int) -> _Choice:
        state = self.choices.get(index)
        if state is None:
            state = self.choices[index] = _Choice()
            if self.text_tools:
                state.parser = toolparse.ToolCallParser()
        return state

    def take(self, obj: dict[str, Any]) -> Iterator[Chunk]:
        if not isinstance(obj, dict):
            raise EngineError(f"upstream sent a non-object event: {obj!r:.200}", code="upstream_error")
        if obj.get("error"):
            error = obj["error"]
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise EngineError(f"upstream error: {message}", code="upstream_error")
        usage = obj.get("usage")
        if isinstance(usage, dict) and usage.get("prompt_tokens") is not None:
            self.usage = usage  # some servers repeat a running total: the last one counts
        for raw in obj.get("choices") or []:
            index = int(raw.get("index") or 0)
            state = self.choice(index)
            logprobs = raw.get("logprobs")
            if "text" in raw:  # a legacy completions server: text and logprobs of its own form
                delta = {"content": raw["text"]}
                logprobs = {"content": legacy_logprobs(logprobs)} if isinstance(logprobs, dict) else None
            else:
                delta = raw.get("delta") or raw.get("message") or {}
            yield from self._delta(index, state, delta, logprobs)
            if raw.get("finish_reason"):
                yield from self._finish(index, state, raw["finish_reason"])

    def _delta(self, index: int, state: _Choice, delta: dict[str, Any], logprobs: Any) -> Iterator[Chunk]:
        # Some servers send both fields with the same text; one of them is the thinking.
        thinking = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(thinking, str) and thinking:
            state.output.append(thinking)
            yield Chunk(THINKING, {"thinking": thinking}, choice=index)
        text = delta.get("content")
        if isinstance(text, list):  # a few servers send content parts even when streaming
            text = toolparse._text_of(text)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal and not text:
            text = refusal  # a refusal is text the user must see; there is no refusal chunk
        if isinstance(text, str) and text:
            state.output.append(text)
            entries = logprobs.get("content") if isinstance(logprobs, dict) else None
            if state.parser is None:
                yield Chunk(CONTENT, {"content": text}, choice=index, logprobs=entries)
            else:
                parsed = state.parser.feed(text)
                if entries is not None and len(parsed) == 1 and parsed[0].data == {"content": text}:
                    yield replace(parsed[0], choice=index, logprobs=entries)
                else:
                    # Tokens that were tool-call markup have no content to carry logprobs.
                    for chunk in parsed:
                        yield replace(chunk, choice=index)
        for fragment in delta.get("tool_calls") or []:
            yield from self._tool(index, state, fragment)

    def _tool(self, index: int, state: _Choice, fragment: dict[str, Any]) -> Iterator[Chunk]:
        function = fragment.get("function") or {}
        k = fragment.get("index")
        if not isinstance(k, int):
            # Servers that omit the index (and non-stream messages) start each call with an id.
            k = state.last_tool + 1 if fragment.get("id") or state.last_tool < 0 else state.last_tool
        state.last_tool = k
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            arguments = json.dumps(arguments)  # an object instead of JSON text
        arguments = arguments or ""
        name = function.get("name")
        state.output.append((name or "") + arguments)
        if k in state.announced:
            if arguments:
                yield Chunk(TOOL, {"index": k, "arguments": arguments}, choice=index)
            return
        pending = state.tools.setdefault(k, {"index": k, "id": "", "name": "", "arguments": ""})
        pending["id"] = pending["id"] or fragment.get("id") or ""
        pending["name"] = pending["name"] or name or ""
        pending["arguments"] += arguments
        if pending["name"]:
            yield self._announce(index, state, k)

    def _announce(self, index: int, state: _Choice, k: int) -> Chunk:
        """The first fragment of call k: held back until its name is known."""
        pending = state.tools.pop(k)
        state.announced.add(k)
        data = {"index": k, "id": pending["id"] or toolparse.new_call_id(), "name": pending["name"]}
        if pending["arguments"]:
            data["arguments"] = pending["arguments"]
        return Chunk(TOOL, data, choice=index)

    def _finish(self, index: int, state: _Choice, reason: str) -> Iterator[Chunk]:
        if state.finished:
            return
        for k in sorted(state.tools):
            yield self._announce(index, state, k)
        if state.parser is not None:
            for chunk in state.parser.finish():
                yield replace(chunk, choice=index)
            # A call in text is what the model meant to stop for; a cut-off stays "length".
            if state.parser.called and reason != "length":
                reason = "tool_calls"
        state.finished = True
        yield Chunk(FINISH, {"finish_reason": reason}, choice=index)

    def complete(self) -> bool:
        return bool(self.choices) and all(c.finished for c in self.choices.values())


class UpstreamEngine:
    """Engine kind "openai": stream(request) POSTs {base_url}/chat/completions with stream=true.

    Config: base_url (required), model, api_key, headers, connect_timeout (5), read_timeout (60:
    the longest silence allowed between bytes), max_retries (3), retry_max_wait (30: total seconds
    of backoff), retry_backoff (0.5: first backoff step), text_tools (false: describe tools in
    the prompt and parse <tool_call> markup from the text instead of sending `tools`), embeddings
    (true: false refuses embedding requests, for an upstream that serves none), embedding_model
    (the `model` sent to {base_url}/embeddings; `model` when unset).
    max_keepalive is no longer read: every engine shares one pool per event loop.

    stream() runs over the running loop's shared_client(), passing this engine's headers and
    timeouts with each request. Closing the generator, or cancelling the task consuming it,
    closes the HTTP response at once, which cancels the upstream request.

    Retries happen only before the first chunk is yielded: connection failures, 429 and 5xx,
    waiting Retry-After when given, else exponential backoff with jitter. A read timeout is never
    retried (the upstream may still be working; a retry would multiply the wait) and raises
    EngineError(code="upstream_timeout"); any other failure raises code "upstream_error".
    """

    def __init__(self, config: dict[str, Any]) -> None:
        base_url = str(config.get("base_url") or "").rstrip("/")
        if not base_url:
            raise ValueError("engine kind 'openai' needs a base_url, e.g. http://127.0.0.1:8000/v1")
        self.base_url = base_url
        self.model = str(config.get("model") or "")
        self.embeddings = bool(config.get("embeddings", True))
        self.embedding_model = str(config.get("embedding_model") or self.model)
        self.text_tools = bool(config.get("text_tools", False))
        self.max_retries = int(config.get("max_retries", 3))
        self.retry_max_wait = float(config.get("retry_max_wait", 30))
        self.retry_backoff = float(config.get("retry_backoff", 0.5))
        connect = float(config.get("connect_timeout", 5))
        self.read_timeout = float(config.get("read_timeout", 60))
        headers = {str(k): str(v) for k, v in (config.get("headers") or {}).items()}
        if config.get("api_key"):
            headers["Authorization"] = f"Bearer {config['api_key']}"
        self._headers = {"Content-Type": "application/json", **headers}
        # connect covers taking a connection from the pool too; the pool has no cap, so that is
        # the TCP (and TLS) connect. sock_read is the longest silence between two reads.
        self._timeout = aiohttp.ClientTimeout(total=None, connect=connect, sock_read=self.read_timeout)

    # -- embeddings --------------------------------------------------------------------------

    async def embed(self, request: EmbeddingRequest) -> Embeddings:
        """POSTs {base_url}/embeddings, with the timeouts, retries and error codes of stream()
        (any failure is worth retrying here: nothing has been handed out before the answer)."""
        if not self.embeddings:
            raise EmbeddingsUnsupported("Its upstream serves no embeddings (config: embeddings false).")
        body: dict[str, Any] = {"model": self.embedding_model, "input": request.inputs}
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
        if request.encoding_format != "float":
            body["encoding_format"] = request.encoding_format
        if request.user is not None:
            body["user"] = request.user
        attempt = 0
        waited = 0.0
        while True:
            try:
                response = await self._post(f"{self.base_url}/embeddings", body)
                try:
                    raw = await self._read(response)
                finally:
                    response.close()
                break
            except _Retry as exc:
                delay = self._backoff(exc, attempt, waited)
                await asyncio.sleep(delay)
                waited += delay
                attempt += 1
        return self._embeddings(_parse(raw), request)

    @staticmethod
    def _embeddings(obj: Any, request: EmbeddingRequest) -> Embeddings:
        data = obj.get("data") if isinstance(obj, dict) else None
        if not isinstance(data, list) or len(data) != len(request.inputs):
            got = len(data) if isinstance(data, list) else "no"
            raise EngineError(
                f"upstream sent {got} embeddings for {len(request.inputs)} inputs", code="upstream_error"
            )
        # Rows go where their index says: a server may answer out of order.
        rows: dict[int, np.ndarray] = {}
        for position, item in enumerate(data):
            index = item.get("index", position) if isinstance(item, dict) else position
            if not isinstance(index, int) or not 0 <= index < len(data) or index in rows:
                raise EngineError(f"upstream sent an embedding with index {index!r}", code="upstream_error")
            rows[index] = _vector(item, index)
        widths = {len(row) for row in rows.values()}
        if len(widths) != 1:
            raise EngineError("upstream sent embeddings of different lengths", code="upstream_error")
        vectors = np.stack([rows[i] for i in range(len(data))])
        usage = obj.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
            return Embeddings(vectors=vectors, input_tokens=usage["prompt_tokens"])
        counted = sum(estimate_tokens(x) if isinstance(x, str) else len(x) for x in request.inputs)
        return Embeddings(vectors=vectors, input_tokens=counted, estimated=True)

    def describe(self) -> dict[str, Any]:
        url = urlsplit(self.base_url)
        host = url.hostname or ""
        if url.port:
            host = f"{host}:{url.port}"
        # userinfo in a URL is a credential: never show it back
        public = urlunsplit((url.scheme, host, url.path, "", ""))
        return {
            "kind": "openai",
            "model": self.model,
            "base_url": public,
            "text_tools": self.text_tools,
            "embedding_model": self.embedding_model if self.embeddings else None,
        }

    def check(self, request: GenerationRequest) -> None:
        """The upstream is the judge of its parameters; only text tools and the prompt's scores
        have limits of ours."""
        if request.prompt_logprobs:
            raise UnsupportedParameter(
                "echo",
                "echo with logprobs (the prompt's log-probabilities) is not read from an upstream server; "
                "leave out one of them.",
            )
        if self._uses_text_tools(request):
            for i, tool in enumerate(request.tools):
                if tool.get("type", "function") != "function":
                    raise UnsupportedParameter(
                        "tools",
                        f"tools[{i}] has type {tool.get('type')!r}; tools described in the prompt "
                        "can only be functions",
                    )

    def _uses_text_tools(self, request: GenerationRequest) -> bool:
        return self.text_tools and bool(request.tools) and request.tool_choice != "none"

    def payload(self, request: GenerationRequest) -> dict[str, Any]:
        """The JSON body: only parameters the request set away from their defaults. Legacy
        prompts go to the server's /completions as they are; everything else to /chat/completions."""
        if request.prompt is not None:
            return self._completions_payload(request)
        messages = request.messages
        if self.text_tools and request.tools:
            messages = toolparse.render_messages(messages, request.tools, request.tool_choice)
        body: dict[str, Any] = {"model": self.model, "messages": messages, **self._sampling(request)}
        if request.logprobs or request.top_logprobs:
            body["logprobs"] = True
            if request.top_logprobs:
                body["top_logprobs"] = request.top_logprobs
        if request.response_format is not None:
            body["response_format"] = request.response_format
        if request.tools and not self.text_tools:
            body["tools"] = request.tools
        if not self.text_tools:
            if request.tool_choice is not None:
                body["tool_choice"] = request.tool_choice
            if request.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = request.parallel_tool_calls
        return self._streamed(request, body)

    def _completions_payload(self, request: GenerationRequest) -> dict[str, Any]:
        prompts = request.prompt or []
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": prompts[0] if len(prompts) == 1 else prompts,
            **self._sampling(request),
        }
        if request.suffix is not None:
            body["suffix"] = request.suffix
        if request.logprobs:
            body["logprobs"] = request.top_logprobs  # the legacy form: how many alternatives
        return self._streamed(request, body)

    @staticmethod
    def _streamed(request: GenerationRequest, body: dict[str, Any]) -> dict[str, Any]:
        if request.user is not None:
            body["user"] = request.user
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        return body

    @staticmethod
    def _sampling(request: GenerationRequest) -> dict[str, Any]:
        """The sampling parameters both APIs share, where set away from their defaults."""
        body: dict[str, Any] = {}
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.temperature != 1.0:
            body["temperature"] = request.temperature
        if request.top_p != 1.0:
            body["top_p"] = request.top_p
        if request.n != 1:
            body["n"] = request.n
        if request.stop:
            body["stop"] = request.stop
        if request.seed is not None:
            body["seed"] = request.seed
        if request.presence_penalty:
            body["presence_penalty"] = request.presence_penalty
        if request.frequency_penalty:
            body["frequency_penalty"] = request.frequency_penalty
        if request.logit_bias:
            body["logit_bias"] = {str(k): v for k, v in request.logit_bias.items()}
        return body

    # -- streaming -------------------------------------------------------------------------

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[Chunk, None]:
        body = self.payload(request)
        path = "/chat/completions" if request.prompt is None else "/completions"
        text_tools = self._uses_text_tools(request)
        attempt = 0
        waited = 0.0
        while True:
            state = _Stream(text_tools)
            yielded = False
            try:
                # aclosing() so that closing this generator closes the HTTP response at once
                async with contextlib.aclosing(self._attempt(body, state, path)) as chunks:
                    async for chunk in chunks:
                        yielded = True
                        yield chunk
                break
            except _Retry as exc:
                if yielded:
                    raise EngineError(
                        f"upstream connection lost mid-stream: {exc}", code="upstream_error"
                    ) from exc
                delay = self._backoff(exc, attempt, waited)
                await asyncio.sleep(delay)
                waited += delay
                attempt += 1
        yield self._usage(request, body.get("messages") or [], state)

    def _backoff(self, exc: _Retry, attempt: int, waited: float) -> float:
        """How long to wait before trying again after `exc` ended attempt number `attempt` (0
        first), `waited` seconds having been waited already; tells the retry listener. Raises
        EngineError once the retries or the wait allowed are spent."""
        delay = self._delay(attempt, exc.retry_after)
        if attempt >= self.max_retries or waited + delay > self.retry_max_wait:
            tries = attempt + 1
            raise EngineError(
                f"upstream failed after {tries} attempt{'s' * (tries > 1)}: {exc}",
                code="upstream_error",
            ) from exc
        if _retry_listener is not None:
            _retry_listener(exc.code, exc.retry_after)
        return delay

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        step = self.retry_backoff * (2**attempt)
        return step * random.uniform(0.5, 1.0)  # jitter: many workers must not retry in step

    async def _post(self, url: str, body: dict[str, Any]) -> aiohttp.ClientResponse:
        """POSTs the body; the response if its status is 200 (the caller closes it). Connection
        failures, 429 and 5xx raise _Retry; a silence past the read timeout, and any other
        status, raise EngineError."""
        try:
            response = await shared_client().post(
                url,
                data=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
                headers=self._headers,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except aiohttp.ConnectionTimeoutError as exc:
            raise _Retry(f"connect timeout on {url}", "connect_timeout") from exc
        except aiohttp.ServerTimeoutError as exc:
            raise EngineError(
                f"upstream sent no response within the read timeout ({url})",
                code="upstream_timeout",
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise _Retry(f"{type(exc).__name__} on {url}: {exc}", "connection_error") from exc
        if response.status == 200:
            return response
        try:
            raw = await self._read(response)
        finally:
            response.close()
        message = f"upstream answered {response.status}: {_error_message(raw, response.reason)}"
        if response.status == 429 or response.status >= 500:
            raise _Retry(message, str(response.status), _retry_after(response.headers))
        raise EngineError(message, code="upstream_error")

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        """The whole body: a silence past the read timeout is EngineError (upstream_timeout), a
        broken connection a _Retry."""
        try:
            return await response.read()
        except aiohttp.ServerTimeoutError as exc:
            raise self._silent() from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}", "connection_error") from exc

    def _silent(self) -> EngineError:
        return EngineError(
            f"upstream went silent for longer than the read timeout ({self.read_timeout:g} s)",
            code="upstream_timeout",
        )

    async def _attempt(self, body: dict[str, Any], state: _Stream, path: str) -> AsyncGenerator[Chunk, None]:
        response = await self._post(f"{self.base_url}{path}", body)
        try:
            kind = response.headers.get("Content-Type", "")
            if kind.startswith("application/json"):  # a server that ignored stream=true
                for chunk in self._whole(await response.read(), state):
                    yield chunk
            else:
                async with contextlib.aclosing(self._events(response.content, state)) as chunks:
                    async for chunk in chunks:
                        yield chunk
        except aiohttp.ServerTimeoutError as exc:
            if state.complete():
                return  # every choice finished; only [DONE] or usage went missing
            raise self._silent() from exc
        except (aiohttp.ClientError, OSError) as exc:
            if state.complete():
                return
            raise _Retry(f"{type(exc).__name__}: {exc}", "connection_error") from exc
        finally:
            # Also on GeneratorExit and CancelledError: closing the generator, or cancelling the
            # task consuming it, closes the connection, which cancels the upstream request. A body
            # read to its end already gave its connection back to the pool; this keeps it there.
            response.close()

    def _whole(self, raw: bytes, state: _Stream) -> Iterator[Chunk]:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise EngineError("upstream sent malformed JSON", code="upstream_error") from exc
        yield from state.take(obj)
        self._check_complete(state)

    async def _events(self, content: aiohttp.StreamReader, state: _Stream) -> AsyncGenerator[Chunk, None]:
        # Raw bytes split into events here and parsed with orjson: decoding text and splitting
        # lines first cost more than the rest of the event's handling.
        sse = SSEParser()
        while received := await content.readany():
            for data in sse.feed(received):
                if data.strip() == b"[DONE]":
                    await _drain(content)
                    self._check_complete(state)
                    return
                for chunk in state.take(_parse(data)):
                    yield chunk
        for data in sse.close():
            if data.strip() == b"[DONE]":
                break
            for chunk in state.take(_parse(data)):
                yield chunk
        self._check_complete(state)

    @staticmethod
    def _check_complete(state: _Stream) -> None:
        # Without [DONE] a cleanly closed body is fine as long as every choice finished.
        if not state.complete():
            raise EngineError("upstream stream ended without finish_reason", code="upstream_error")

    def _usage(self, request: GenerationRequest, messages: list[dict[str, Any]], state: _Stream) -> Chunk:
        usage = state.usage
        if usage is not None:
            return Chunk(
                USAGE,
                {
                    "input_tokens": int(usage.get("prompt_tokens") or 0),
                    "output_tokens": int(usage.get("completion_tokens") or 0),
                },
            )
        output = "".join(text for c in state.choices.values() for text in c.output)
        return Chunk(
            USAGE,
            {
                "input_tokens": estimate_tokens(_prompt_text(request, messages)),
                "output_tokens": estimate_tokens(output),
                "estimated": True,
            },
        )


def _vector(item: Any, index: int) -> np.ndarray:
    """One `data` item's embedding: a JSON array of numbers, or base64 of little-endian float32."""
    raw = item.get("embedding") if isinstance(item, dict) else None
    try:
        if isinstance(raw, str):
            return np.frombuffer(base64.b64decode(raw, validate=True), dtype="<f4").astype(np.float32)
        if (
            isinstance(raw, list)
            and raw
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in raw)
        ):
            return np.asarray(raw, dtype=np.float32)
    except ValueError:  # base64 that is not, or not a whole number of floats
        pass
    raise EngineError(f"upstream sent an unreadable embedding for input {index}", code="upstream_error")


def _parse(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        shown = data[:200].decode("utf-8", "replace")
        raise EngineError(f"upstream sent malformed JSON: {shown!r}", code="upstream_error") from exc


class SSEParser:
    """The data of each SSE event from raw bytes; comments, event names, ids and retry fields are
    skipped. feed() returns the events completed by the bytes given, close() what is left."""

    def __init__(self) -> None:
        self._tail = b""  # an unfinished line
        self._pending: list[bytes] = []  # data lines of the event being read

    def feed(self, received: bytes) -> list[bytes]:
        text = self._tail + received if self._tail else received
        held = b""
        if b"\r" in text:
            if text.endswith(b"\r"):  # its \n may come in the next read: one line end, not two
                held, text = b"\r", text[:-1]
            text = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = text.split(b"\n")
        self._tail = lines[-1] + held
        events: list[bytes] = []
        pending = self._pending
        for line in lines[:-1]:
            if not line:
                if pending:
                    events.append(pending[0] if len(pending) == 1 else b"\n".join(pending))
                    pending = []
            elif line.startswith(b"data:") or line == b"data":
                value = line[6:] if line[5:6] == b" " else line[5:]
                if pending and _is_whole(pending):
                    # Some servers omit the blank line between events; don't glue two JSON objects.
                    events.append(b"\n".join(pending))
                    pending = []
                pending.append(value)
            # anything else is a comment (keep-alive), an event name, an id or a retry field
        self._pending = pending
        return events

    def close(self) -> list[bytes]:
        events = self.feed(b"\n\n") if self._tail or self._pending else []
        self._tail, self._pending = b"", []
        return events


# How long to wait for the end of the body after [DONE]. It normally comes with [DONE] or right
# after it; a server that keeps the body open must not hold up the generation's last chunk.
_DRAIN_SECONDS = 0.05


async def _drain(content: aiohttp.StreamReader) -> None:
    """Reads what follows [DONE] to the end of the body. A response closed before its body ended
    takes its connection with it; read to the end, the connection goes back to the pool for the
    next generation (breaking at [DONE] opened a new connection for every generation)."""
    with contextlib.suppress(TimeoutError, aiohttp.ClientError):
        async with asyncio.timeout(_DRAIN_SECONDS):
            while await content.readany():
                pass


def _is_whole(pending: list[bytes]) -> bool:
    text = b"\n".join(pending)
    if text.strip() == b"[DONE]":
        return True
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True
