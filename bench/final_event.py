"""How late a streamed Responses job's final event reaches its reader, against the job's own
`finished_at` (set by the worker just before its final commit), on a fresh web process and on a
warm one. `python -m bench.final_event [--rounds 3] [--streams 5]`.

Each round starts a new web process and worker, then reads `--streams` Responses streams one after another
(20 tokens at 100 tok/s): the first is the first Responses stream that process served. The
figure is the receipt of `response.completed` minus `finished_at` (both wall clock, one machine);
it includes the worker's commit, the terminal chunk's append, the web's wake-up, read and render.
Writes run/bench/final_event.json."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from typing import Any

import psycopg

from bench.accounting import DSN
from bench.processes import ROOT, Stack
from bench.stats import AppendLog, ms
from bench.wire import Connection
from harness.webhook_receiver import Receiver, running_receiver

TOKENS, PACE = 20, 100.0


async def one_stream(stack: Stack, engine: str) -> dict[str, Any]:
    """One Responses stream: the job id, and when its first and final events arrived (wall)."""
    conn = Connection(stack.web_port)
    body = json.dumps({"model": engine, "input": "bench", "stream": True}).encode()
    headers = {"content-type": "application/json", "authorization": f"Bearer {stack.secret_key}"}
    try:
        response = await conn.request("POST", "/v1/responses", body, headers)
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {(await response.body())[:200]!r}")
        job_id, first, final, buffer = response.headers.get("x-spool-job-id", ""), None, None, b""
        async for data, _ in response.pieces():
            at = time.monotonic()
            buffer += data
            if first is None and b"response.output_text.delta" in buffer:
                first = at
            if b"event: response.completed" in buffer:
                final = at
        return {"job_id": job_id, "first": first, "final": final}
    finally:
        conn.close()


def finished_at(job_ids: list[str]) -> dict[str, float]:
    with psycopg.connect(DSN, autocommit=True) as db:
        rows = db.execute(
            "SELECT id::text, extract(epoch FROM finished_at) FROM jobs_job WHERE id = ANY(%s::uuid[])",
            (job_ids,),
        ).fetchall()
    return {job_id: float(at) for job_id, at in rows if at is not None}


async def register(stack: Stack, receiver: Receiver) -> None:
    """A webhook endpoint for the bench's user: every job's end then queues a delivery."""
    conn = Connection(stack.web_port)
    body = json.dumps({"url": receiver.url("/bench"), "event_types": ["response.completed"]}).encode()
    headers = {"content-type": "application/json", "authorization": f"Bearer {stack.secret_key}"}
    try:
        response = await conn.request("POST", "/v1/webhook_endpoints", body, headers)
        answer = await response.body()
        if response.status != 200:
            raise RuntimeError(f"webhook endpoint: HTTP {response.status}: {answer[:200]!r}")
    finally:
        conn.close()


def _stages(seen: dict[str, Any], ended: float, log: AppendLog, wall: float) -> dict[str, float]:
    """ms: finished_at -> the terminal chunk's append starts (commit, then what else comes
    first); -> the final event's receipt (append, wake-up, read, render, send); and the whole."""
    [terminal] = [a for a in log.by_job[seen["job_id"]] if a.end]
    appended = terminal.before + wall
    final = seen["final"] + wall
    return {
        "commit_until_append": round((appended - ended) * 1000, 2),
        "append_until_received": round((final - appended) * 1000, 2),
        "total": round((final - ended) * 1000, 2),
    }


async def measure(stack: Stack, rounds: int, streams: int, receiver: Receiver | None) -> dict[str, Any]:
    engine = stack.engine(TOKENS, PACE)
    with psycopg.connect(DSN, autocommit=True) as db:  # an earlier run's, whose receiver is gone
        db.execute("UPDATE jobs_webhookendpoint SET enabled = false")
    if receiver is not None:
        await register(stack, receiver)
    log = AppendLog(stack.append_log)
    wall = time.time() - time.monotonic()  # one clock: the shim's appends are monotonic
    first_of_process: list[dict[str, float]] = []
    later: list[dict[str, float]] = []
    for round_ in range(rounds):
        if round_:
            stack.stop("web")
            stack.start_web()
            stack.stop("worker")
            stack.start_worker()
        seen = [await one_stream(stack, engine) for _ in range(streams)]
        ends = finished_at([s["job_id"] for s in seen])
        await asyncio.sleep(1.0)  # the shim writes its file every 0.5 s
        log.read_new()
        for i, s in enumerate(seen):
            (first_of_process if i == 0 else later).append(_stages(s, ends[s["job_id"]], log, wall))
    return {
        "webhook_endpoint": receiver is not None,
        "rounds": rounds,
        "streams_per_round": streams,
        "final_event_after_finished_at_ms": {
            "first_stream_of_a_web_process": first_of_process,
            "later_streams": {stage: ms([row[stage] / 1000 for row in later], 50, 90) for stage in later[0]},
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", type=int, default=5)
    parser.add_argument("--webhook", action="store_true", help="the user has a webhook endpoint (loopback)")
    parser.add_argument("--broker", help="CELERY_BROKER_URL (default: the Redis the stack uses)")
    args = parser.parse_args()
    if args.broker:
        os.environ["CELERY_BROKER_URL"] = args.broker
    stack = Stack(run_dir=ROOT / "run" / "bench", worker_concurrency=16)
    with running_receiver() if args.webhook else contextlib.nullcontext() as receiver:
        if receiver is not None:
            os.environ["SPOOL_WEBHOOK_ALLOWED_NETWORKS"] = "127.0.0.0/8"  # Stack.env() passes it on
        stack.measure(lambda s: measure(s, args.rounds, args.streams, receiver), "final_event")


if __name__ == "__main__":
    main()
