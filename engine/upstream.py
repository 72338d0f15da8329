"""An engine that streams from any OpenAI-compatible chat completions server over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import random
import re
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from engine import toolparse
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


# One client per event loop, shared by every engine and generation on it: a worker process runs
# all its generations on one loop, so this is one connection pool per process. Keyed by loop
# because an asyncio connection cannot move between loops (tests run a loop per test).
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)

# Idle connections kept. Small on purpose: httpcore's pool (1.0.9) scans every connection on each
# request start and end, and for each idle one counts all connections again, O(idle x all) per
# event. With 200 generations starting and ending together, the client spent 8.0-9.5 ms of CPU
# per 20-chunk generation keeping 4096, 1.9 ms keeping 16, 1.6 ms closing every connection.
# Its keep-alive check counts all connections, not idle ones, so past 16 connections in all an
# ended generation's connection is closed at once: reuse helps a lightly loaded worker (no new
# TCP or TLS handshake before the first token) and costs a busy one little. Idle ones close
# after 5 s anyway.
_KEEPALIVE = 16


def shared_client() -> httpx.AsyncClient:
    """The HTTP client of the running event loop.

    It has no headers and no timeouts of any engine: every request passes its own. No connection
    cap: the worker's concurrency bounds it, and a capped pool would queue generations behind
    each other. Close it with close_shared_client() before its loop ends.
    """
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        # A pool's idle connections refer to their loop, so the weak key alone never lets a
        # loop go: drop clients whose loop ended without close_shared_client() (asyncio.run and
        # async_to_sync make a loop per call), and let the collector close their sockets.
        for ended in [other for other in _clients if other.is_closed()]:
            del _clients[ended]
        client = _clients[loop] = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=_KEEPALIVE),
        )
    return client


async def close_shared_client() -> None:
    """Closes the running loop's client, for a worker shutting its loop down (and tests)."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


def estimate_tokens(text: str) -> int:
    return len(_TOKEN_RE.findall(text))


def _prompt_text(request: GenerationRequest, messages: list[dict[str, Any]]) -> str:
    parts: list[str] = []
    for message in messages:
        parts.append(toolparse._text_of(message.get("content")))
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            parts += [function.get("name", ""), str(function.get("arguments", ""))]
    if request.tools:
        parts.append(json.dumps(request.tools))
    return "\n".join(parts)


class _Retry(Exception):
    """A failure worth another attempt, if nothing was yielded yet."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait (Retry-After seconds or date, or retry-after-ms)."""
    ms = response.headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_message(response: httpx.Response) -> str:
    text = response.text[:2000]
    try:
        error = json.loads(text).get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return text.strip() or response.reason_phrase


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
            delta = raw.get("delta") or raw.get("message") or {}
            yield from self._delta(index, state, delta, raw.get("logprobs"))
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
    the prompt and parse <tool_call> markup from the text instead of sending `tools`).
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
        self.text_tools = bool(config.get("text_tools", False))
        self.max_retries = int(config.get("max_retries", 3))
        self.retry_max_wait = float(config.get("retry_max_wait", 30))
        self.retry_backoff = float(config.get("retry_backoff", 0.5))
        connect = float(config.get("connect_timeout", 5))
        self.read_timeout = float(config.get("read_timeout", 60))
        headers = {str(k): str(v) for k, v in (config.get("headers") or {}).items()}
        if config.get("api_key"):
            headers["Authorization"] = f"Bearer {config['api_key']}"
        self._headers = headers
        # pool=None: the shared pool has no connection cap, so waiting for one cannot happen.
        self._timeout = httpx.Timeout(
            connect=connect, read=self.read_timeout, write=self.read_timeout, pool=None
        )

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
        }

    def check(self, request: GenerationRequest) -> None:
        """The upstream is the judge of its parameters; only text tools have limits of ours."""
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
        """The JSON body: only parameters the request set away from their defaults."""
        messages = request.messages
        if self.text_tools and request.tools:
            messages = toolparse.render_messages(messages, request.tools, request.tool_choice)
        body: dict[str, Any] = {"model": self.model, "messages": messages}
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
        if request.user is not None:
            body["user"] = request.user
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        return body

    # -- streaming -------------------------------------------------------------------------

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[Chunk, None]:
        body = self.payload(request)
        text_tools = self._uses_text_tools(request)
        attempt = 0
        waited = 0.0
        while True:
            state = _Stream(text_tools)
            yielded = False
            try:
                # aclosing() so that closing this generator closes the HTTP response at once
                async with contextlib.aclosing(self._attempt(body, state)) as chunks:
                    async for chunk in chunks:
                        yielded = True
                        yield chunk
                break
            except _Retry as exc:
                if yielded:
                    raise EngineError(
                        f"upstream connection lost mid-stream: {exc}", code="upstream_error"
                    ) from exc
                delay = self._delay(attempt, exc.retry_after)
                if attempt >= self.max_retries or waited + delay > self.retry_max_wait:
                    tries = attempt + 1
                    raise EngineError(
                        f"upstream failed after {tries} attempt{'s' * (tries > 1)}: {exc}",
                        code="upstream_error",
                    ) from exc
                await asyncio.sleep(delay)
                waited += delay
                attempt += 1
        yield self._usage(request, body["messages"], state)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        step = self.retry_backoff * (2**attempt)
        return step * random.uniform(0.5, 1.0)  # jitter: many workers must not retry in step

    async def _attempt(self, body: dict[str, Any], state: _Stream) -> AsyncGenerator[Chunk, None]:
        url = f"{self.base_url}/chat/completions"
        client = shared_client()
        outgoing = client.build_request("POST", url, json=body, headers=self._headers, timeout=self._timeout)
        try:
            response = await client.send(outgoing, stream=True)
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout | httpx.WriteTimeout):
                raise _Retry(f"{type(exc).__name__} on {url}") from exc
            raise EngineError(
                f"upstream sent no response within the read timeout ({url})",
                code="upstream_timeout",
            ) from exc
        except httpx.TransportError as exc:
            raise _Retry(f"{type(exc).__name__} on {url}: {exc}") from exc
        try:
            if response.status_code != 200:
                await response.aread()
                message = f"upstream answered {response.status_code}: {_error_message(response)}"
                if response.status_code == 429 or response.status_code >= 500:
                    raise _Retry(message, _retry_after(response))
                raise EngineError(message, code="upstream_error")
            kind = response.headers.get("content-type", "")
            if kind.startswith("application/json"):  # a server that ignored stream=true
                await response.aread()
                for chunk in self._whole(response, state):
                    yield chunk
            else:
                async with contextlib.aclosing(self._events(response, state)) as chunks:
                    async for chunk in chunks:
                        yield chunk
        except httpx.ReadTimeout as exc:
            if state.complete():
                return  # every choice finished; only [DONE] or usage went missing
            raise EngineError(
                f"upstream went silent for longer than the read timeout ({self.read_timeout:g} s)",
                code="upstream_timeout",
            ) from exc
        except httpx.TransportError as exc:
            if state.complete():
                return
            raise _Retry(f"{type(exc).__name__}: {exc}") from exc
        finally:
            # Also on GeneratorExit and CancelledError: closing the generator, or cancelling the
            # task consuming it, closes the connection, which cancels the upstream request.
            await response.aclose()

    def _whole(self, response: httpx.Response, state: _Stream) -> Iterator[Chunk]:
        try:
            obj = response.json()
        except ValueError as exc:
            raise EngineError("upstream sent malformed JSON", code="upstream_error") from exc
        yield from state.take(obj)
        self._check_complete(state)

    async def _events(self, response: httpx.Response, state: _Stream) -> AsyncGenerator[Chunk, None]:
        async with contextlib.aclosing(_sse_data(response.aiter_lines())) as events:
            async for data in events:
                if data.strip() == "[DONE]":
                    await _drain(events)
                    break
                try:
                    obj = json.loads(data)
                except ValueError as exc:
                    raise EngineError(
                        f"upstream sent malformed JSON: {data[:200]!r}", code="upstream_error"
                    ) from exc
                for chunk in state.take(obj):
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


async def _sse_data(lines: AsyncIterator[str]) -> AsyncGenerator[str, None]:
    """The data of each SSE event; comments, event names, ids and retry fields are skipped."""
    pending: list[str] = []
    async for line in lines:
        if not line:
            if pending:
                yield "\n".join(pending)
                pending = []
            continue
        if line.startswith(":"):
            continue  # comment / keep-alive
        name, _, value = line.partition(":")
        if name != "data":
            continue
        value = value.removeprefix(" ")
        if pending and _is_whole(pending):
            # Some servers omit the blank line between events; don't glue two JSON objects.
            yield "\n".join(pending)
            pending = []
        pending.append(value)
    if pending:
        yield "\n".join(pending)


# How long to wait for the end of the body after [DONE]. It normally comes with [DONE] or right
# after it; a server that keeps the body open must not hold up the generation's last chunk.
_DRAIN_SECONDS = 0.05


async def _drain(events: AsyncIterator[str]) -> None:
    """Reads what follows [DONE] to the end of the body. A response closed before its body ended
    takes its connection with it; read to the end, the connection goes back to the pool for the
    next generation (breaking at [DONE] opened a new connection for every generation)."""
    with contextlib.suppress(TimeoutError, httpx.TransportError):
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for _ in events:
                pass


def _is_whole(pending: list[str]) -> bool:
    text = "\n".join(pending)
    if text.strip() == "[DONE]":
        return True
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
