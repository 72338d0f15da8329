"""The scheduler under faults: a worker SIGKILLed while it holds slots (how long until they come
back; is any job lost), and one idempotency key sent by many callers at once (how many jobs)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

import redis

from bench import sched_inproc as inproc
from bench.sched_jobs import TERMINAL, Row, create_many, rows, wait_all_ended
from bench.sched_scenarios import Shape
from bench.sched_stack import Key, SchedStack
from bench.sched_ways import Ways, same_key_at_once


def _live_leases(stack: SchedStack, engine_id: str) -> set[str]:
    """The jobs holding an unexpired slot of the engine, read from the scheduler's own key."""
    client = redis.Redis.from_url(stack.redis_url)
    now_ms = int(client.time()[0] * 1000)
    members = client.zrangebyscore(f"{stack.prefix}:sched:{{{engine_id}}}:leases", now_ms, "+inf")
    return {m.decode() for m in members}


async def _victims(stack: SchedStack, engine: str, limit: int) -> list[str]:
    """The engine's jobs running for 2 s or more (so with output: the first token is due after
    1/tps; Postgres keeps a job's first chunk time from its end only), once `limit` are."""
    deadline = time.monotonic() + 180
    while True:
        found = await asyncio.to_thread(rows, stack, engine)
        victims = sorted(
            r.job_id for r in found if r.status == "running" and r.started and r.started < time.time() - 2
        )
        if len(victims) >= limit or time.monotonic() > deadline:
            return victims
        await asyncio.sleep(0.25)


async def lease(stack: SchedStack, key: Key, shape: Shape, limit: int, jobs: int, tag: str) -> dict[str, Any]:
    """`jobs` jobs on an engine limited to `limit`, started while one worker (the victim) runs,
    so it holds every slot; a second worker is started and ready before the victim is SIGKILLed
    (as among several workers: the survivor's sweeper looks after the dead's jobs). Four times a
    second until every waiting job started (or 240 s): the slots in use as the scheduler says
    (admission.status(engine).running) and which of the dead worker's jobs still hold one. The
    jobs still running then are cancelled (their generations are long, so the victim's last)."""
    engine = await asyncio.to_thread(inproc.engine, stack, f"lease-{tag}", shape.model(tag, None), limit)
    engine_id = await asyncio.to_thread(inproc.engine_id, engine)
    for name in stack.workers():
        stack.stop(name)
    stack.start_worker("worker-victim")
    await asyncio.to_thread(stack.wait_workers_ready)
    await create_many(stack.web_port, key, engine, jobs)
    victims = await _victims(stack, engine, limit)
    stack.start_worker("worker-survivor")
    await asyncio.to_thread(stack.wait_workers_ready)
    running_before = (await asyncio.to_thread(inproc.running, engine))[0]
    still_running = [r.job_id for r in await asyncio.to_thread(rows, stack, engine) if r.status == "running"]
    killed_at = time.time()
    stack.kill("worker-victim")
    timeline: list[tuple[float, int, int, int]] = []  # (s after the kill, slots in use, waiting, dead's held)
    back_at = None
    end = time.monotonic() + 240
    while time.monotonic() < end:
        slots, waiting = await asyncio.to_thread(inproc.running, engine)
        held = len(set(victims) & await asyncio.to_thread(_live_leases, stack, engine_id))
        at = round(time.time() - killed_at, 2)
        if not timeline or timeline[-1][1:] != (slots, sum(waiting.values()), held):
            timeline.append((at, slots, sum(waiting.values()), held))
        if held == 0 and back_at is None:
            back_at = at
        found = await asyncio.to_thread(rows, stack, engine)
        if back_at is not None and all(r.started or r.status in TERMINAL for r in found):
            break
        await asyncio.sleep(0.25)
    others = [r for r in found if r.job_id not in victims]
    started_later = [r.started - killed_at for r in others if r.started and r.started > killed_at]
    cancelled = await asyncio.to_thread(inproc.cancel_unfinished, engine)
    found = await wait_all_ended(stack, engine, jobs, timeout=60)
    by_id = {r.job_id: r for r in found}
    return {
        "jobs": jobs,
        "engine_max_concurrency": limit,
        "generation_s": shape.seconds,
        "slots_in_use_at_kill": running_before,
        "dead_workers_jobs": len(victims),
        "dead_workers_jobs_running_at_kill": len(set(victims) & set(still_running)),
        "slots_back_after_s": back_at,
        "waiting_jobs_started_after_s": sorted(round(s, 2) for s in started_later),
        "cancelled_by_the_benchmark_after": cancelled,
        "timeline": timeline,  # (s after the kill, slots in use, waiting, held by the dead)
        "dead_workers_jobs_ended": _ends(by_id[v] for v in victims),
        "other_jobs_ended": _ends(r for r in found if r.job_id not in victims),
        "not_ended": sum(1 for r in found if r.status not in TERMINAL),
        "lost": jobs - len(found),
    }


def _ends(found: Iterable[Row]) -> dict[str, int]:
    return dict(Counter(f"{r.status} {r.finish_reason}" for r in found))


async def idempotency(
    stack: SchedStack, ways: Ways, key: Key, callers: int, repeats: int, tag: str
) -> dict[str, Any]:
    """`callers` creates with one key at once, `repeats` times, each on an engine of its own."""
    runs = []
    for i in range(repeats):
        engine = await asyncio.to_thread(
            inproc.engine, stack, f"idempotency-{tag}-{i}", f"fake?tokens=2&run={tag}", 4
        )
        created = await same_key_at_once(stack, ways, key, engine, callers)
        found = await asyncio.to_thread(rows, stack, engine)
        runs.append(
            {
                "callers": callers,
                "distinct_job_ids": len({c.job_id for c in created if c.job_id}),
                "job_rows": len(found),
                "errors": dict(Counter(c.error.split(":")[0] for c in created if not c.job_id)),
            }
        )
    return {"way": ways.describe()["idempotency_key"], "runs": runs}


def drop_a_message(stack: SchedStack, key: Key, engine: str) -> str:
    """A job admitted at once (its engine idle) whose Celery message is never sent, as when the
    process that ran the admission dies before it publishes, or the publish fails: the job the
    sweeper should send again (SPOOL_REQUEUE_AFTER_SECONDS, docs/SCHEDULING.md, flow 5). In this
    process, before any other job is created here."""
    from jobs import queueing

    send = queueing.send_job
    queueing.send_job = lambda job_id: None
    try:
        (created,) = inproc.create_many(key.owner, engine, 1, threads=1)
    finally:
        queueing.send_job = send
    return created.job_id


async def lost_message(
    stack: SchedStack, engine: str, job_id: str, since: float, at_least: float
) -> dict[str, Any]:
    """What became of the dropped job, `at_least` seconds after it was created (waiting the rest)."""
    await asyncio.sleep(max(0.0, since + at_least - time.monotonic()))
    engine_id = await asyncio.to_thread(inproc.engine_id, engine)
    client = redis.Redis.from_url(stack.redis_url)
    state = client.hget(f"{stack.prefix}:sched:{{{engine_id}}}:jobs", job_id)
    (row,) = [r for r in await asyncio.to_thread(rows, stack, engine) if r.job_id == job_id]
    return {
        "seconds_since_created": round(time.monotonic() - since, 1),
        "status": row.status,
        "finish_reason": row.finish_reason,
        "scheduler_state": state.decode() if state else None,
        "leases_in_use": (await asyncio.to_thread(inproc.running, engine))[0],
    }
