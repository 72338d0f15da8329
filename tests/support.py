"""Test doubles and data shared by several test modules."""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections
from django.db.backends.signals import connection_created

from engine.types import Chunk, EngineError, GenerationRequest
from jobs import chunklog
from jobs.redis_clients import async_redis

# Seed 000's tool, as clients send it.
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}


@contextmanager
def statements_on_django_connections() -> Iterator[list[str]]:
    """The SQL run through Django's connections meanwhile, on whatever thread: this one's, and
    any connection made meanwhile (a worker's end in a thread of its loop's)."""
    sql: list[str] = []
    wrapped: list[Any] = []

    def record(execute: Any, statement: str, params: Any, many: bool, context: Any) -> Any:
        sql.append(statement)
        return execute(statement, params, many, context)

    def wrap(connection: Any, **_: Any) -> None:
        if record not in connection.execute_wrappers:
            connection.execute_wrappers.append(record)
            wrapped.append(connection)

    for connection in connections.all():
        wrap(connection)
    connection_created.connect(wrap)
    try:
        yield sql
    finally:
        connection_created.disconnect(wrap)
        for connection in wrapped:
            connection.execute_wrappers.remove(record)


SIGNALS: collections.defaultdict[str, threading.Event] = collections.defaultdict(threading.Event)
CLOSED_EARLY: list[list[dict]] = []


class ScriptedEngine:
    """An engine that plays back config["script"]: chunk dicts ({"type", "data", "choice",
    "logprobs"}), or steps {"raise": message}, {"cancel": job_id}, {"sleep": seconds},
    {"forget": job_id} (drop the job's live log, as a Redis restart would), {"signal": name}
    (sets SIGNALS[name], a threading.Event, for a test on another thread to wait on). A stream
    closed before its end, as a cancelled job closes it, is noted in CLOSED_EARLY.
    Register it for a test with monkeypatch.setitem(engine.registry.KINDS, "scripted", ScriptedEngine)."""

    def __init__(self, config: dict) -> None:
        self.script = config["script"]

    def check(self, request: GenerationRequest) -> None:
        pass

    def describe(self) -> dict:
        return {"kind": "scripted"}

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        ended = False
        try:
            async for chunk in self._play():
                yield chunk
            ended = True
        finally:
            if not ended:
                CLOSED_EARLY.append(self.script)

    async def _play(self) -> AsyncIterator[Chunk]:
        for step in self.script:
            if "raise" in step:
                raise EngineError(step["raise"], code="upstream_error")
            if "signal" in step:
                SIGNALS[step["signal"]].set()
            elif "cancel" in step:
                await asyncio.to_thread(chunklog.request_cancel, step["cancel"])
            elif "forget" in step:  # what a Redis restart without persistence does to a log
                job_id = step["forget"]
                await async_redis().delete(chunklog.chunks_key(job_id), chunklog.text_key(job_id))
            elif "sleep" in step:
                await asyncio.sleep(step["sleep"])
            else:
                yield Chunk(step["type"], step["data"], step.get("choice", 0), step.get("logprobs"))


# What a browser posts with the engine admin form: the management fields of its deployments'
# inline (none added).
NO_DEPLOYMENTS = {
    "deployments-TOTAL_FORMS": "0",
    "deployments-INITIAL_FORMS": "0",
    "deployments-MIN_NUM_FORMS": "0",
    "deployments-MAX_NUM_FORMS": "1000",
}
