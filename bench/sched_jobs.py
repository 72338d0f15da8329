"""Jobs for the scheduler benchmark: created over HTTP on the native face (or in this process
where no face takes the field yet, bench/sched_inproc.py), and read back from Postgres with the
times Spool keeps on each (created, started = claimed by a worker, first chunk, finished)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import psycopg

from bench.sched_stack import Key, SchedStack
from bench.wire import Connection

PROMPT = [{"role": "user", "content": "bench"}]
TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class Created:
    job_id: str
    status: int  # the HTTP status of the create (202), 0 when made in this process
    error: str = ""


def _create_body(engine: str, fields: dict[str, Any]) -> bytes:
    return json.dumps({"engine": engine, "messages": PROMPT, **fields}).encode()


async def create(
    conn: Connection,
    key: Key,
    engine: str,
    fields: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Created:
    """POST /v1/jobs; `fields` are more body fields (a priority once the face takes one)."""
    response = await conn.request(
        "POST",
        "/v1/jobs",
        _create_body(engine, fields or {}),
        {"content-type": "application/json", "authorization": f"Bearer {key.secret}", **(headers or {})},
    )
    body = await response.body()
    if response.status != 202:
        return Created("", response.status, body[:300].decode(errors="replace"))
    return Created(json.loads(body)["id"], response.status)


async def create_many(
    port: int, key: Key, engine: str, n: int, fields: dict[str, Any] | None = None, width: int = 16
) -> list[Created]:
    """n jobs as fast as `width` keep-alive connections take them."""
    results: list[Created] = []
    indexes = iter(range(n))

    async def lane() -> None:
        conn = Connection(port)
        try:
            for _ in indexes:
                results.append(await create(conn, key, engine, fields))
        finally:
            conn.close()

    await asyncio.gather(*(lane() for _ in range(min(width, n))))
    return results


async def create_spread(
    port: int, key: Key, engine: str, n: int, seconds: float, fields: dict[str, Any] | None = None
) -> list[Created]:
    """n jobs, one every seconds/n, each on its own connection (a client arriving)."""
    start = time.monotonic()

    async def one(i: int) -> Created:
        await asyncio.sleep(max(0.0, start + i * seconds / n - time.monotonic()))
        conn = Connection(port)
        try:
            return await create(conn, key, engine, fields)
        finally:
            conn.close()

    return list(await asyncio.gather(*(one(i) for i in range(n))))


@dataclass(frozen=True, slots=True)
class Row:
    job_id: str
    owner: str
    status: str
    finish_reason: str | None
    priority: str | None
    created: float  # epoch seconds
    started: float | None
    first_chunk: float | None
    finished: float | None

    @property
    def queue_wait(self) -> float | None:
        return None if self.started is None else self.started - self.created

    @property
    def run_time(self) -> float | None:
        return None if self.started is None or self.finished is None else self.finished - self.started


_ROWS = """
SELECT j.id::text, u.username, j.status, j.finish_reason, j.options->>'priority',
       extract(epoch FROM j.created_at), extract(epoch FROM j.started_at),
       extract(epoch FROM j.first_chunk_at), extract(epoch FROM j.finished_at)
FROM jobs_job j JOIN auth_user u ON u.id = j.owner_id
WHERE j.engine_id = (SELECT id FROM jobs_engine WHERE name = %s)
"""


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


def rows(stack: SchedStack, engine: str) -> list[Row]:
    """Every job of the engine."""
    with psycopg.connect(stack.dsn, autocommit=True) as db:
        found = db.execute(_ROWS, (engine,)).fetchall()
    return [Row(r[0], r[1], r[2], r[3], r[4], float(r[5]), _f(r[6]), _f(r[7]), _f(r[8])) for r in found]


async def wait_all_ended(stack: SchedStack, engine: str, expected: int, timeout: float) -> list[Row]:
    """Until `expected` jobs of the engine have ended, or `timeout` seconds; every row."""
    deadline = time.monotonic() + timeout
    while True:
        found = await asyncio.to_thread(rows, stack, engine)
        ended = sum(1 for r in found if r.status in TERMINAL)
        if ended >= expected or time.monotonic() > deadline:
            return found
        stack.check_alive()
        await asyncio.sleep(1.0)
