"""How the benchmark asks for a priority class and an idempotency key: over HTTP when the native
face takes them (probed once per run: a `priority` body field, an `Idempotency-Key` header), else
through services.job_create in this process, as the face would (bench/sched_inproc.py). The
report says which way each figure was made."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from bench import sched_inproc as inproc
from bench.sched_jobs import Created, create, create_many, create_spread, rows
from bench.sched_stack import Key, SchedStack
from bench.wire import Connection


@dataclass(frozen=True, slots=True)
class Ways:
    priority_over_http: bool
    idempotency_over_http: bool

    def describe(self) -> dict[str, str]:
        return {
            "priority": "HTTP: the native face's `priority` field"
            if self.priority_over_http
            else "in process: services.job_create(placement=Placement(priority=...)); no face takes it yet",
            "idempotency_key": "HTTP: the native face's Idempotency-Key header"
            if self.idempotency_over_http
            else "in process: services.job_create(placement=Placement(idempotency_key=...)) "
            "from threads on real Postgres; no face reads the header yet",
        }


async def probe(stack: SchedStack, key: Key, engine: str) -> Ways:
    """On an engine of its own (its jobs are no scenario's)."""
    conn = Connection(stack.web_port)
    try:
        asked = await create(conn, key, engine, {"priority": "batch"})
        priority = bool(asked.job_id) and any(
            r.job_id == asked.job_id and r.priority == "batch"
            for r in await asyncio.to_thread(rows, stack, engine)
        )
        header = {"idempotency-key": f"probe-{uuid.uuid4().hex}"}
        first = await create(conn, key, engine, headers=header)
        again = await create(conn, key, engine, headers=header)
        idempotency = bool(first.job_id) and first.job_id == again.job_id
    finally:
        conn.close()
    return Ways(priority, idempotency)


async def with_priority(
    stack: SchedStack, ways: Ways, key: Key, engine: str, n: int, priority: str, over: float = 0.0
) -> list[Created]:
    """n jobs of that class: all at once, or one every over/n seconds."""
    if ways.priority_over_http:
        fields = {"priority": priority}
        if over:
            return await create_spread(stack.web_port, key, engine, n, over, fields)
        return await create_many(stack.web_port, key, engine, n, fields)
    if over:
        return await asyncio.to_thread(inproc.create_spread, key.owner, engine, n, over, priority=priority)
    return await asyncio.to_thread(inproc.create_many, key.owner, engine, n, priority=priority)


async def same_key_at_once(
    stack: SchedStack, ways: Ways, key: Key, engine: str, callers: int
) -> list[Created]:
    """`callers` creates of one request with one idempotency key, sent together."""
    idempotency_key = f"bench-{uuid.uuid4().hex}"
    if not ways.idempotency_over_http:
        return await asyncio.to_thread(inproc.create_at_once, key.owner, engine, callers, idempotency_key)
    conns = [Connection(stack.web_port) for _ in range(callers)]
    try:
        return list(
            await asyncio.gather(
                *(create(conn, key, engine, headers={"idempotency-key": idempotency_key}) for conn in conns)
            )
        )
    finally:
        for conn in conns:
            conn.close()
