"""fakeupstream: an OpenAI-compatible fake LLM server for tests and benchmarks.

Run it: ``python -m fakeupstream --port 9100`` (base URL ``http://127.0.0.1:9100/v1``), or in a
test: ``with fakeupstream.running(port=0) as base_url: ...``.

Endpoints: ``POST /v1/chat/completions`` (stream and non-stream), ``POST /v1/completions``
(the legacy API: each prompt plays the scenario as a user message would, text_completion
objects, integer logprobs), ``POST /v1/embeddings`` (deterministic unit vectors,
``scenarios.embedding``: ``dimensions`` wide, else the model's ``dims``, 8 by default;
``encoding_format`` float or base64; the faults ``fail``, ``retry_after``, ``fail_times``, ``ttfb``
and ``drop_after`` as below), ``GET /v1/models``;
for tests ``GET /_requests[?key=K]`` (the recorded requests: method, path, headers, JSON body,
key, attempt, status, events_sent; began_at and ended_at, epoch seconds, for a request that was
answered, from its slot's taking to its answer's end), ``DELETE /_requests`` (clears records and
fault counters),
``GET /_stats`` (requests, active_streams, max_active_streams; in_flight, max_in_flight and
rejected_429 for the whole server and, under ``models``, per model string with a limit),
``DELETE /_stats`` (the counters start again), ``GET /health``. The ``/v1`` prefix is optional.
With ``api_key`` set, /v1 routes want ``Authorization: Bearer <key>``.

The request's ``model`` picks the scenario and its settings: ``<scenario>[?name=value&...]``.
Every setting may also come from a header ``X-Fake-<Name>`` (``-`` for ``_``, e.g.
``X-Fake-Drop-After: 3``); the model string wins over headers.

Scenarios (unknown names behave like ``fake``, echoing the model string back):

- ``fake``: ``tokens`` (default 16) deterministic words per choice; n>1 gives n interleaved
  choices; max_tokens / max_completion_tokens cut it with finish_reason "length".
- ``echo``: the last user message, word by word.
- ``reasoning``: reasoning deltas then ``tokens`` (default 8) words of content; the field is
  ``reasoning_field`` (default ``reasoning_content``; or ``reasoning``).
- ``text-tools``: content holding ``calls`` (default 1) ``<tool_call>{...}</tool_call>`` blocks
  after "Let me check the weather.", cut into awkward 1-7 character pieces; finish "stop".
- ``replay:seed000``: seed 000's GPT-4 tool-call stream, verbatim (no usage chunk in it).
- ``replay:parallel``: content, then two parallel tool calls (ids only in first fragments, an
  empty arguments fragment), finish "tool_calls", a usage chunk. Replays ignore stream_options.

Generated scenarios: same id/created/model on every chunk, role only in each choice's first
delta, usage chunk (``choices: []``) only under ``stream_options.include_usage`` (never with
``usage=0``), logprobs echoed when asked (``top_logprobs`` alternatives), ``data: [DONE]`` last.

Lengths: ``vary=F`` draws each request's ``tokens`` uniformly from tokens × (1 ± F) (seeded: the
same lengths each time the server starts), so generations started together end apart, as a
real model's do.

Pace: ``tps`` tokens per second on a fixed schedule, token i due i/tps after the stream starts,
whatever the server's own load (default unpaced); ``ttfb`` seconds before the response head;
``keepalive=1`` puts an SSE comment before every event.

Limits, as a model server with room for so many requests at once: ``max_concurrency=N`` counts
the requests of one model string being answered (from the request to the stream's end) and
answers 429 with ``Retry-After`` (``retry_after`` seconds, else 1) to one more, before any work;
``--max-concurrency N`` (``running(max_concurrency=N)``) does the same across the whole server.

Faults (K counts data events sent; the first event carries only the role):

- ``fail=<status>``: answer that status with an OpenAI error body before any byte;
  ``retry_after=<s>`` adds a Retry-After header; ``message=<text>`` sets the error message.
- ``drop_after=K``: close the connection after K events (a truncated chunked body).
- ``stall_after=K``: go silent after K events for ``stall`` seconds (default 30), then go on.
- ``error_after=K``: send ``data: {"error": {...}}`` after K events, then ``[DONE]``.
- ``bad_json_after=K``: send a malformed JSON event after K events, then ``[DONE]``.
- ``no_finish=1``: leave out every event carrying a finish_reason.
- ``ignore_stream=1``: answer a stream request with a non-stream JSON body.
- ``fail_times=K`` with ``key=<unique>``: the faults above apply only to the first K requests
  with that key, then requests succeed (e.g. ``fake?fail=429&retry_after=1&fail_times=1&key=t1``).
  Without ``key`` the key is the model string plus the X-Fake headers.
"""

from __future__ import annotations

from typing import Any

import httpx

from fakeupstream.server import FakeUpstream, running, serve

__all__ = ["FakeUpstream", "recorded", "running", "serve"]


def recorded(base_url: str, key: str | None = None) -> list[dict[str, Any]]:
    """The requests a running fake server recorded (for one fault key when given)."""
    root = base_url.rstrip("/").removesuffix("/v1")
    params = {"key": key} if key is not None else None
    response = httpx.get(f"{root}/_requests", params=params, timeout=10)
    response.raise_for_status()
    return response.json()
