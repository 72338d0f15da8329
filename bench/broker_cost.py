"""What the broker spends per job: N no-op tasks sent and run through Celery with Spool's broker
settings (acks_late, prefetch 1, the Redis transport's visibility options), by a worker this
script runs in-process. On Redis: a redis-server started on a spare loopback port (and stopped
again); its CPU per task from /proc and its commands per task from INFO commandstats. With
--amqp URL, on that RabbitMQ instead (a queue of its own, deleted after): the broker's CPU per
task read from its beam.smp process, which other users of that RabbitMQ share: an upper bound.

    .venv/bin/python -m bench.broker_cost [--tasks 3000] [--repeats 3] [--amqp amqp://guest:guest@127.0.0.1:5672//]

Prints a JSON line per round and writes them to run/bench/broker_cost-<broker>.json."""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker

from bench import procstat
from bench.redis_capacity import start_redis

ROOT = Path(__file__).resolve().parent.parent


def make_app(broker: str, queue: str) -> tuple[Celery, Any, threading.Semaphore]:
    app = Celery("brokercost", broker=broker, set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_enable_remote_control=False,
        broker_transport_options={"visibility_timeout": 300, "unacked_restore_interval": 100},
    )
    done = threading.Semaphore(0)

    @app.task(name="bench.noop")
    def noop(job_id: str) -> None:
        done.release()

    return app, noop, done


def beam_pid() -> int | None:
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "beam.smp":
                return int(entry.name)
        except OSError:
            continue
    return None


def runs(
    broker: str, tasks: int, repeats: int, server_pid: int | None, stats: redis.Redis | None
) -> list[Any]:
    """`repeats` rounds of `tasks` tasks through one in-process worker."""
    queue = f"brokercost-{uuid.uuid4().hex[:8]}"
    app, noop, done = make_app(broker, queue)
    rows = []
    with start_worker(app, pool="threads", concurrency=8, perform_ping_check=False, loglevel="ERROR"):
        noop.delay("warm-up")
        done.acquire()
        for _ in range(repeats):
            cpu0 = procstat.cpu_seconds(server_pid) if server_pid else 0.0
            calls0 = _calls(stats)
            started = time.monotonic()
            for _ in range(tasks):
                noop.delay(str(uuid.uuid4()))
            for _ in range(tasks):
                done.acquire()
            wall = time.monotonic() - started
            cpu = (procstat.cpu_seconds(server_pid) if server_pid else 0.0) - cpu0
            calls = _calls(stats)
            row: dict[str, Any] = {
                "tasks": tasks,
                "tasks_per_s": round(tasks / wall),
                "broker_us_per_task": round(cpu / tasks * 1e6, 1) if server_pid else None,
            }
            if stats is not None:
                row["commands_per_task"] = {
                    name: round((calls[name] - calls0.get(name, 0)) / tasks, 2)
                    for name in sorted(calls)
                    if calls[name] - calls0.get(name, 0) >= tasks / 10
                }
            print(json.dumps(row), flush=True)
            rows.append(row)
    with app.connection_for_write() as connection:  # leave nothing behind on a shared broker
        connection.default_channel.queue_delete(queue)
    return rows


def _calls(stats: redis.Redis | None) -> dict[str, int]:
    if stats is None:
        return {}
    return {name.removeprefix("cmdstat_"): v["calls"] for name, v in stats.info("commandstats").items()}


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--amqp", default="")
    args = parser.parse_args()
    result: dict[str, Any] = {"machine": procstat.describe_machine(), "code": procstat.describe_code(ROOT)}
    if args.amqp:  # one broker per run: a second in-process worker in one process stopped consuming
        pid = beam_pid()
        measured = runs(args.amqp, args.tasks, args.repeats, pid, None)
        result["rabbitmq"] = {
            "runs": measured,
            "broker_us_per_task": spread([r["broker_us_per_task"] for r in measured]) if pid else None,
        }
    else:
        with tempfile.TemporaryDirectory() as directory:
            proc, port = start_redis(Path(directory))
            try:
                stats = redis.Redis(port=port)
                measured = runs(f"redis://127.0.0.1:{port}/0", args.tasks, args.repeats, proc.pid, stats)
            finally:
                proc.kill()
                proc.wait()
        result["redis"] = {
            "runs": measured,
            "broker_us_per_task": spread([r["broker_us_per_task"] for r in measured]),
        }
    out = ROOT / "run" / "bench" / f"broker_cost-{'rabbitmq' if args.amqp else 'redis'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
