"""One generation three ways (upstream direct, OpenAI SSE face, SEMOSS polls), receipts timed."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from bench.wire import Connection, Response

PROMPT = [{"role": "user", "content": "bench"}]
SEMOSS = "/Monolith/api/engine"
FORM = "application/x-www-form-urlencoded"


@dataclass(slots=True)
class Gen:
    """One generation as the client saw it."""

    face: str
    t_send: float
    t_first: float | None = None  # first content chunk received
    t_done: float | None = None
    job_id: str = ""
    seqs: list[int] = field(default_factory=list)  # log sequence number of each content chunk
    times: list[float] = field(default_factory=list)  # when each arrived
    error: str | None = None

    def got(self, seq: int, at: float) -> None:
        if self.t_first is None:
            self.t_first = at
        self.seqs.append(seq)
        self.times.append(at)


@dataclass(frozen=True, slots=True)
class Target:
    """Where and as whom: the Spool engine name and the fake upstream model it stands for."""

    web_port: int
    upstream_port: int
    access_key: str
    secret_key: str
    engine: str
    model: str

    @property
    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.access_key}:{self.secret_key}".encode()).decode()


async def _events(response: Response) -> AsyncIterator[tuple[bytes, float]]:
    """SSE data payloads with the receipt time of the HTTP chunk that completed them."""
    buffer = b""
    async for data, at in response.pieces():
        buffer += data
        while (end := buffer.find(b"\n\n")) >= 0:
            event, buffer = buffer[:end], buffer[end + 2 :]
            if event.startswith(b"data: "):
                yield event[6:], at


def _json(body: dict) -> bytes:
    return json.dumps(body).encode()


async def _chat_stream(gen: Gen, response: Response) -> None:
    """Reads an OpenAI-format stream (the upstream's or Spool's) into gen."""
    if response.status != 200:
        gen.error = f"HTTP {response.status}: {(await response.body())[:200]!r}"
        return
    gen.job_id = response.headers.get("x-spool-job-id", "")
    count = 0
    async for payload, at in _events(response):
        if payload == b"[DONE]":
            gen.t_done = at
            continue
        obj = json.loads(payload)
        if "error" in obj:
            gen.error = str(obj["error"].get("message"))[:200]
            continue
        for choice in obj.get("choices") or ():
            delta = choice.get("delta") or {}
            # The first delta carries the role and empty content; it is no token.
            if delta.get("content") and "role" not in delta:
                gen.got(count, at)
                count += 1
    if gen.t_done is None and gen.error is None:
        gen.error = "stream ended without [DONE]"


async def direct(conn: Connection, target: Target, gen: Gen) -> None:
    body = _json({"model": target.model, "messages": PROMPT, "stream": True})
    response = await conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
    await _chat_stream(gen, response)


async def openai_sse(conn: Connection, target: Target, gen: Gen) -> None:
    body = _json({"model": target.engine, "messages": PROMPT, "stream": True})
    headers = {"content-type": "application/json", "authorization": f"Bearer {target.secret_key}"}
    response = await conn.request("POST", "/v1/chat/completions", body, headers)
    await _chat_stream(gen, response)


async def start_semoss_job(conn: Connection, target: Target) -> str:
    """runPixelAsync: the job id."""
    expression = f'LLM(engine="{target.engine}", command="<encode>bench</encode>", paramValues=[{{}}]);'
    form = urlencode({"insightId": "new", "expression": expression}).encode()
    response = await conn.request(
        "POST", f"{SEMOSS}/runPixelAsync", form, {"content-type": FORM, "authorization": target.basic}
    )
    body = await response.body()
    if response.status != 200:
        raise RuntimeError(f"runPixelAsync HTTP {response.status}: {body[:200]!r}")
    return json.loads(body)["jobId"]


async def poll(conn: Connection, target: Target, job_id: str, cursor: int) -> tuple[dict, float]:
    """One pixelJobStreaming long-poll with the cursor extension: (answer, receipt time)."""
    return await _semoss_poll(conn, target, "pixelJobStreaming", {"jobId": job_id, "cursor": cursor})


async def partial_poll(conn: Connection, target: Target, job_id: str) -> tuple[dict, float]:
    """One partial long-poll, as the ai-server-sdk's stream_ask sends: (answer, receipt time)."""
    return await _semoss_poll(conn, target, "partial", {"jobId": job_id})


async def _semoss_poll(conn: Connection, target: Target, endpoint: str, form: dict) -> tuple[dict, float]:
    response = await conn.request(
        "POST",
        f"{SEMOSS}/{endpoint}",
        urlencode(form).encode(),
        {"content-type": FORM, "authorization": target.basic},
    )
    body = await response.body()
    at = time.monotonic()
    if response.status != 200:
        raise RuntimeError(f"{endpoint} HTTP {response.status}: {body[:200]!r}")
    return json.loads(body), at


async def semoss(conn: Connection, target: Target, gen: Gen) -> None:
    try:
        gen.job_id = await start_semoss_job(conn, target)
        cursor = 0
        while gen.t_done is None:
            answer, at = await poll(conn, target, gen.job_id, cursor)
            messages = answer["message"]
            start = answer["cursor"] - len(messages)  # one message per chunk for plain content
            for i, message in enumerate(messages):
                data = message["data"]
                if "finish_reason" in data:
                    gen.t_done = at
                    if data["finish_reason"] == "error":
                        gen.error = str(data.get("error"))[:200]
                elif message["stream_type"] == "content":
                    gen.got(start + i, at)
            cursor = answer["cursor"]
    except RuntimeError as exc:
        gen.error = str(exc)


FACES = {"direct": direct, "sse": openai_sse, "semoss": semoss}


def port_for(face: str, target: Target) -> int:
    return target.upstream_port if face == "direct" else target.web_port


async def fan_out(
    n: int, port: int, work: Callable[[Connection, int], Awaitable[Any]], width: int = 20
) -> list[Any]:
    """work(conn, i) for i in range(n), `width` at a time, each on its own keep-alive connection
    (set-up work such as creating jobs, which is not what is measured)."""
    results: list[Any] = [None] * n
    indexes = iter(range(n))

    async def lane() -> None:
        conn = Connection(port)
        try:
            for i in indexes:
                results[i] = await work(conn, i)
        finally:
            conn.close()

    await asyncio.gather(*(lane() for _ in range(min(width, n))))
    return results
