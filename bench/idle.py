"""Idle waiters on one web process: long-pollers, then SSE clients, on jobs that never start."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import procstat, profile
from bench.clients import PROMPT, Target, fan_out, partial_poll, poll, start_semoss_job
from bench.processes import Stack
from bench.stats import pct
from bench.wire import Connection

WAITER_ERRORS = (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, KeyError, RuntimeError)


async def _create_jobs(target: Target, n: int) -> list[str]:
    return await fan_out(n, target.web_port, lambda conn, i: start_semoss_job(conn, target))


async def _watch(pid: int, stop: asyncio.Event, peak: dict[str, int]) -> None:
    while not stop.is_set():
        peak["rss"] = max(peak["rss"], procstat.rss_bytes(pid))
        peak["fds"] = max(peak["fds"], procstat.open_fds(pid))
        await asyncio.sleep(0.5)


async def _hold(
    stack: Stack, kind: str, n: int, hold: float, waiter: Any, profile_to: Path | None
) -> dict[str, Any]:
    web = stack.pid("web")
    spy = None if profile_to is None else await profile.record(web, hold, profile_to)
    rss_before = procstat.rss_bytes(web)
    peak = {"rss": rss_before, "fds": procstat.open_fds(web)}
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch(web, stop, peak))
    cpu0, t0, client0 = procstat.cpu_seconds(web), time.monotonic(), time.process_time()
    queued0 = procstat.run_queue_seconds(web)
    try:
        results = await asyncio.gather(*(waiter(i, t0 + hold) for i in range(n)))
        cpu1, t1, client1 = procstat.cpu_seconds(web), time.monotonic(), time.process_time()
        queued1 = procstat.run_queue_seconds(web)
    finally:
        stop.set()
        await watcher
        stack.cancel_queued()  # so the worker, once restarted, does not run the idle jobs
        if spy is not None:
            await spy.wait()
    errors = [r["error"] for r in results if r["error"]]
    waits = [w for r in results for w in r["waits"]]
    requests = sum(r["requests"] for r in results)
    return {
        "kind": kind,
        "waiters": n,
        "held_s": round(t1 - t0, 1),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:3],
        "requests": requests,
        # A long-poll should answer empty after SPOOL_LONG_POLL_SECONDS (1 s); the SSE face sends
        # its head after one keep-alive period (10 s).
        "answer_s": {
            q: None if (v := pct(waits, n)) is None else round(v, 2) for q, n in (("p50", 50), ("p99", 99))
        },
        "web_rss_mib_before": round(rss_before / 2**20, 1),
        "web_rss_mib_peak": round(peak["rss"] / 2**20, 1),
        "web_rss_kib_per_waiter": round((peak["rss"] - rss_before) / 1024 / n, 1),
        "web_open_fds_peak": peak["fds"],
        "web_cpu_cores": round((cpu1 - cpu0) / (t1 - t0), 3),
        "web_cpu_us_per_waiter_second": round((cpu1 - cpu0) / (t1 - t0) / n * 1e6, 1),
        "web_cpu_us_per_request": round((cpu1 - cpu0) / max(requests, 1) * 1e6, 1),
        # The clients share the machine's 2 cores with the web process and Redis.
        "client_cpu_cores": round((client1 - client0) / (t1 - t0), 3),
        # The share of the hold the web's loop was ready to run but waited for a CPU.
        "web_run_queue_share": round((queued1 - queued0) / (t1 - t0), 3),
        **({"web_profile": profile.top_frames(profile_to)} if profile_to and profile_to.exists() else {}),
    }


async def long_pollers(
    stack: Stack, target: Target, n: int, hold: float, profile_to: Path | None = None
) -> dict[str, Any]:
    async def ask(conn: Connection, job_id: str) -> tuple[dict, float, Any]:
        answer, at = await poll(conn, target, job_id, 0)
        return answer, at, answer["message"][:1]

    return await _pollers(stack, target, n, hold, "long-poll (pixelJobStreaming)", ask, profile_to)


async def partial_pollers(
    stack: Stack, target: Target, n: int, hold: float, profile_to: Path | None = None
) -> dict[str, Any]:
    """The ai-server-sdk's stream_ask, waiting: partial long-polls of jobs with no text yet."""

    async def ask(conn: Connection, job_id: str) -> tuple[dict, float, Any]:
        answer, at = await partial_poll(conn, target, job_id)
        return answer, at, answer["message"]["new"]

    return await _pollers(stack, target, n, hold, "long-poll (partial)", ask, profile_to)


async def _pollers(
    stack: Stack,
    target: Target,
    n: int,
    hold: float,
    kind: str,
    ask: Callable[[Connection, str], Awaitable[tuple[dict, float, Any]]],
    profile_to: Path | None,
) -> dict[str, Any]:
    job_ids = await _create_jobs(target, n)

    async def waiter(i: int, until: float) -> dict[str, Any]:
        conn, out = Connection(target.web_port), {"error": None, "requests": 0, "waits": []}
        try:
            while time.monotonic() < until:
                sent = time.monotonic()
                _, at, got = await asyncio.wait_for(ask(conn, job_ids[i]), 60)
                out["waits"].append(at - sent)
                out["requests"] += 1
                if got:
                    out["error"] = f"an idle job answered {got}"
        except WAITER_ERRORS as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"[:200]
        finally:
            conn.close()
        return out

    return await _hold(stack, kind, n, hold, waiter, profile_to)


HEAD_GRACE = 60.0


async def sse_clients(
    stack: Stack, target: Target, n: int, hold: float, profile_to: Path | None = None
) -> dict[str, Any]:
    async def waiter(i: int, until: float) -> dict[str, Any]:
        conn, out = Connection(target.web_port), {"error": None, "requests": 1, "waits": []}
        body = json.dumps({"model": target.engine, "messages": PROMPT, "stream": True}).encode()
        headers = {"content-type": "application/json", "authorization": f"Bearer {target.secret_key}"}
        try:
            # The face answers its head after one keep-alive period (10 s) with nothing to say,
            # counted from when the web process gets to the request: creating 1,000 jobs at once
            # keeps it busy for seconds. A late head is a figure (answer_s), not an error; only
            # one that has not come HEAD_GRACE seconds after the hold is.
            sent = time.monotonic()
            try:
                response = await asyncio.wait_for(
                    conn.request("POST", "/v1/chat/completions", body, headers),
                    until - time.monotonic() + HEAD_GRACE,
                )
            except TimeoutError:
                out["error"] = f"no response head {HEAD_GRACE:g} s after the hold"
                return out
            out["waits"].append(time.monotonic() - sent)
            if response.status != 200:
                out["error"] = f"HTTP {response.status}"
                return out
            async with asyncio.timeout(max(0.0, until - time.monotonic())):
                async for data, _ in response.pieces():
                    if data.strip() and not data.startswith(b":"):
                        out["error"] = f"an idle job sent {data[:80]!r}"
        except TimeoutError:
            pass  # held until the end: what an idle client should see
        except WAITER_ERRORS as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"[:200]
        finally:
            conn.close()
        return out

    return await _hold(stack, "SSE (/v1/chat/completions)", n, hold, waiter, profile_to)
