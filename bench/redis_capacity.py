"""What one Redis node spends per chunk of the chunk log, with the worker's batching: N simulated
generations at 100 tokens/s append through the real LogWriter (one EVALSHA for every job of a
loop turn; before 49e563d, one pipelined EVALSHA per job) to a redis-server this script starts
on a spare loopback port and stops again.
With --readers sse|semoss each generation also has one reader making the web's Redis calls: an
SSE stream (wait on the wake-up channel, LRANGE from its cursor, again) or a SEMOSS poller with
a cursor (per poll: the request-limit INCR, the live-state read, then the same wait and read).
The readers run in a process of their own, as in a web process. Reports redis-server CPU per
chunk from /proc, chunks per EVALSHA and per read, the CPU per chunk of this process (the
worker's append path) and of the readers', and MEMORY USAGE of every key of a finished job.

    .venv/bin/python -m bench.redis_capacity [--jobs 100 300] [--seconds 10] [--repeats 3] [--readers sse]

Prints one JSON document and writes it to run/bench/redis_capacity.json."""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench import procstat

ROOT = Path(__file__).resolve().parent.parent
PACE = 100.0  # tokens per second per generation
PHASES = 10  # generations start spread over one token period, as real ones do
TOKEN = {"type": "content", "data": {"content": " token"}}  # a typical 1-word delta


def _spare_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _spare_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(directory)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    deadline = time.monotonic() + 10
    while True:
        try:
            if redis.Redis(port=port).ping():
                return proc, port
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)


def setup_django(redis_url: str) -> None:
    os.environ["SPOOL_CHUNKLOG_REDIS_URL"] = redis_url
    os.environ["SPOOL_CHUNKLOG_REDIS_CLUSTER"] = "0"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.setdefault("DJANGO_DEBUG", "1")  # no secret key needed: nothing is served
    import django

    django.setup()


async def read_to_the_end(job_id: str, kind: str, reads: Any) -> None:
    """One reader of a job, making the Redis calls the web makes for it (jobs/faces)."""
    from jobs import chunklog, limits, wakeup

    cursor = 0
    while True:
        if kind == "semoss":
            await limits.count_request(f"bench-{job_id}")
            await chunklog.read_live(job_id)
        chunks = await wakeup.wait_for(
            job_id, lambda c=cursor: chunklog.read_since(job_id, c), bool, 1.0 if kind == "semoss" else 10.0
        )
        with reads.get_lock():
            reads.value += 1
        cursor += len(chunks)
        if chunks and chunklog.is_terminal(chunks[-1]):
            return


def read_in_a_process(redis_url: str, kind: str, job_ids: list[str], reads: Any, ready: Any) -> None:
    """The readers, in a process of their own as in a web process, on one event loop."""
    setup_django(redis_url)
    ready.set()

    async def read_all() -> None:
        await asyncio.gather(*(read_to_the_end(job_id, kind, reads) for job_id in job_ids))

    asyncio.run(read_all())


async def run_cell(
    jobs: int, seconds: float, redis_pid: int, info: Any, readers: str, redis_url: str
) -> dict[str, Any]:
    """`jobs` generations appending at PACE for `seconds`, measured after one second of warm-up."""
    from jobs.worker.writer import JobLog, writer

    log_writer = writer()
    logs = [JobLog(str(uuid.uuid4()), lambda: None) for _ in range(jobs)]
    spawn = multiprocessing.get_context("spawn")
    reads, ready = spawn.Value("q", 0), spawn.Event()
    reader = None
    if readers:
        job_ids = [j.job_id for j in logs]
        reader = spawn.Process(target=read_in_a_process, args=(redis_url, readers, job_ids, reads, ready))
        reader.start()
        await asyncio.to_thread(ready.wait, 60)
    for job_log in logs:
        log_writer.open(job_log)
    loop = asyncio.get_running_loop()
    period = 1.0 / PACE
    produced = 0
    measuring: dict[str, float] = {}

    async def produce() -> None:
        nonlocal produced
        start = loop.time()
        tick = 0
        while loop.time() - start < seconds + 1:
            tick += 1
            # One phase of the generations gets its next token every period / PHASES.
            await asyncio.sleep(max(0.0, start + tick * period / PHASES - loop.time()))
            for job_log in logs[tick % PHASES :: PHASES]:
                job_log.add(TOKEN)
                log_writer.ready(job_log)
                produced += 1
            if not measuring and loop.time() - start >= 1:
                measuring.update(_snapshot(redis_pid, info, produced, reads.value, reader))

    await produce()
    end = _snapshot(redis_pid, info, produced, reads.value, reader)
    for job_log in logs:
        job_log.add({"type": "finish", "data": {"finish_reason": "stop"}})
        log_writer.ready(job_log)
    await asyncio.gather(*(job_log.drained.wait() for job_log in logs))
    if reader is not None:
        await asyncio.to_thread(reader.join, 60)
    for job_log in logs:
        log_writer.close(job_log)
    chunks = end["produced"] - measuring["produced"]
    wall = end["wall"] - measuring["wall"]
    evalsha = end["evalsha"] - measuring["evalsha"]
    finished = logs[0].job_id
    return {
        "jobs": jobs,
        "readers": readers or None,
        "chunks_per_read": round(chunks / (end["reads"] - measuring["reads"]), 2) if readers else None,
        "chunks_per_s": round(chunks / wall),
        "target_chunks_per_s": round(jobs * PACE),
        "redis_us_per_chunk": round((end["redis_cpu"] - measuring["redis_cpu"]) / chunks * 1e6, 2),
        "redis_cores": round((end["redis_cpu"] - measuring["redis_cpu"]) / wall, 3),
        "writer_us_per_chunk": round((end["own_cpu"] - measuring["own_cpu"]) / chunks * 1e6, 2),
        "readers_us_per_chunk": round((end["reader_cpu"] - measuring["reader_cpu"]) / chunks * 1e6, 2)
        if readers
        else None,
        "chunks_per_evalsha": round(chunks / evalsha, 2) if evalsha else None,
        "finished_log_tokens": len(logs[0].written) - 1,
        "finished_log_bytes": job_memory(info, finished),
    }


def job_memory(info: Any, job_id: str) -> dict[str, int]:
    """MEMORY USAGE of each key of one job (its {id} hash tag), by kind."""
    return {
        key.decode().split("}:", 1)[1]: info.memory_usage(key, samples=0)
        for key in info.scan_iter(match=f"*{{{job_id}}}*")
    }


async def one_log(tokens: int) -> str:
    """A finished job as the worker leaves it: its meta (as job_create writes it), `tokens`
    content chunks of real-length words, usage and finish, and one reader's handed-out cursor."""
    from jobs import chunklog

    job_id = str(uuid.uuid4())
    chunklog.write_meta(job_id, {
        "owner": 1, "engine": {"id": str(uuid.uuid4()), "name": "gpt-4o-mini", "kind": "openai"},
        "room": str(uuid.uuid4()), "face": "semoss", "created": "2026-12-02T16:00:00+00:00",
        "request": {"model": "gpt-4o-mini", "max_completion_tokens": tokens, "temperature": 0.7, "n": 1},
        "options": {"store": False},
    })  # fmt: skip
    words = ["the", " capacity", " of", " one", " Redis", " node", ",", " measured", " here"]
    chunks = [{"type": "content", "data": {"content": words[i % len(words)]}} for i in range(tokens)]
    usage = {"type": "usage", "data": {"input_tokens": 60, "output_tokens": tokens}}
    finish = {"type": "finish", "data": {"finish_reason": "stop"}}
    for start in range(0, tokens, 3):  # appended 3 chunks at a time, as at 100 tok/s
        await chunklog.append_many([(job_id, chunks[start : start + 3])])
    await chunklog.append_many([(job_id, [usage, finish])])
    await chunklog.claim_chunks(job_id, "semoss")
    return job_id


def _snapshot(redis_pid: int, info: Any, produced: int, reads: int, reader: Any) -> dict[str, float]:
    stats = info.info("commandstats").get("cmdstat_evalsha", {"calls": 0})
    return {
        "wall": time.monotonic(),
        "produced": produced,
        "redis_cpu": procstat.cpu_seconds(redis_pid),
        "own_cpu": procstat.cpu_seconds(os.getpid()),
        "evalsha": stats["calls"],
        "reads": reads,
        "reader_cpu": procstat.cpu_seconds(reader.pid) if reader is not None else 0.0,
    }


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--readers", choices=["sse", "semoss"], default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        proc, port = start_redis(Path(directory))
        try:
            url = f"redis://127.0.0.1:{port}/0"
            setup_django(url)
            import redis

            info = redis.Redis(port=port)
            runs = []
            for _ in range(args.repeats):
                for jobs in args.jobs:
                    runs.append(asyncio.run(run_cell(jobs, args.seconds, proc.pid, info, args.readers, url)))
                    print(json.dumps(runs[-1]), flush=True)
            from django.conf import settings

            memory = {tokens: job_memory(info, asyncio.run(one_log(tokens))) for tokens in (100, 1000)}
            result = {
                "machine": procstat.describe_machine(),
                "code": procstat.describe_code(ROOT),
                "readers": args.readers or None,
                "log_ttl_seconds": settings.SPOOL.redis.chunk_log_ttl_seconds,
                "finished_job_bytes": {t: {**m, "total": sum(m.values())} for t, m in memory.items()},
                "runs": runs,
                "by_jobs": {
                    jobs: {
                        key: spread([r[key] for r in runs if r["jobs"] == jobs])
                        for key in (
                            "redis_us_per_chunk",
                            "writer_us_per_chunk",
                            "readers_us_per_chunk",
                            "chunks_per_evalsha",
                            "chunks_per_read",
                            "chunks_per_s",
                        )
                        if runs[0][key] is not None
                    }
                    for jobs in args.jobs
                },  # fmt: skip
            }
        finally:
            proc.kill()
            proc.wait()
    out = ROOT / "run" / "bench" / f"redis_capacity{'-' + args.readers if args.readers else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(
        json.dumps(
            {"by_jobs": result["by_jobs"], "finished_job_bytes": result["finished_job_bytes"]}, indent=1
        )
    )


if __name__ == "__main__":
    main()
