"""What the worker's batched append costs per job entry, sent as one call of the append script
for all jobs of a batch (single Redis) or as a pipeline of one call per job (what a cluster
needs): N jobs with one chunk each per batch, the two ways alternated, against a redis-server
this script starts on a spare loopback port and stops again. Reports the CPU of this process
(the worker's side: packing, reply parsing) and of redis-server per job entry, from /proc.

    .venv/bin/python -m bench.append_calls [--jobs 10 30 100] [--batches 300] [--repeats 3]

Prints one JSON document."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import procstat
from bench.redis_capacity import start_redis

TOKEN = {"type": "content", "data": {"content": " token"}}


async def _measure(
    ways: dict[str, Any], jobs: int, batches: int, redis_pid: int
) -> dict[str, dict[str, float]]:
    from jobs import chunklog
    from jobs.redis_clients import async_redis

    client = async_redis()
    await client.script_load(chunklog._APPEND.source)
    figures: dict[str, dict[str, float]] = {}
    for name, send in ways.items():
        ids = [f"bench-{name}-{jobs}-{i}" for i in range(jobs)]
        lengths = [0] * jobs
        await client.delete(*[chunklog.chunks_key(i) for i in ids])
        own, server, wall = (
            procstat.cpu_seconds(os.getpid()),
            procstat.cpu_seconds(redis_pid),
            time.perf_counter(),
        )
        for _ in range(batches):
            replies = await send(client, [(i, [TOKEN]) for i in ids], lengths)
            lengths = [r.length for r in replies]
        entries = jobs * batches
        figures[name] = {
            "client_us_per_entry": (procstat.cpu_seconds(os.getpid()) - own) / entries * 1e6,
            "redis_us_per_entry": (procstat.cpu_seconds(redis_pid) - server) / entries * 1e6,
            "ms_per_batch": (time.perf_counter() - wall) / batches * 1e3,
        }
        if lengths != [batches] * jobs:
            raise AssertionError(f"{name}: logs of {set(lengths)} chunks, {batches} expected")
    await client.flushdb()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[10, 30, 100])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        server, port = start_redis(Path(scratch))
        try:
            os.environ["REDIS_URL"] = os.environ["SPOOL_CHUNKLOG_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
            os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
            os.environ.setdefault("DJANGO_DEBUG", "1")
            import django

            django.setup()
            from jobs import chunklog

            ways = {"one call": chunklog.append_in_one_call, "call per job": chunklog.append_per_job}
            runs: dict[int, dict[str, list[dict[str, float]]]] = {}
            for jobs in options.jobs:
                for _ in range(options.repeats):
                    figures = asyncio.run(_measure(ways, jobs, options.batches, server.pid))
                    for name, found in figures.items():
                        runs.setdefault(jobs, {}).setdefault(name, []).append(found)
        finally:
            server.terminate()
            server.wait(10)
    summary = {
        jobs: {
            name: {key: [round(min(v), 1), round(statistics.median(v), 1), round(max(v), 1)]
                   for key in found[0] for v in [[f[key] for f in found]]}
            for name, found in by_way.items()
        }
        for jobs, by_way in runs.items()
    }  # fmt: skip
    print(json.dumps({"min_median_max": summary, "machine": procstat.describe_machine()}))


if __name__ == "__main__":
    main()
