"""What the hand-offs of a job's task cost the worker, per job: Celery's threads pool handed each
task from the consumer to a thread (ThreadPoolExecutor.submit), and the thread handed the job to
the event loop and waited (jobs.worker.runtime.run) twice, for the generation and for the log's
end; Spool's pool (jobs/worker/pool.py) hands the task to the loop once, where Celery's sync trace
runs in a greenback portal and awaits the job in place. Both with a no-op job, so what is timed is
the hand-offs alone: wall time and CPU per task. `python -m bench.worker_hops`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time

import greenback

from jobs.worker import runtime

ROUNDS = 3000


async def _job() -> None:
    return None


def _thread_task() -> None:
    runtime.run(_job())  # the generation
    runtime.run(_job())  # the log's end


def _portal_task() -> None:
    runtime.wait(_job())
    runtime.wait(_job())


def _timed(one: object) -> dict[str, float]:
    walls = []
    cpu = time.process_time()
    for _ in range(ROUNDS):
        start = time.perf_counter()
        one()  # type: ignore[operator]
        walls.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu
    walls.sort()
    return {
        "wall_us_p50": round(walls[len(walls) // 2] * 1e6, 1),
        "wall_us_p90": round(walls[len(walls) * 9 // 10] * 1e6, 1),
        "cpu_us_per_task": round(cpu / ROUNDS * 1e6, 1),
    }


def main() -> None:
    loop = runtime.loop()
    executor = concurrent.futures.ThreadPoolExecutor(8)

    def threads_pool() -> None:  # consumer -> thread -> loop -> thread -> loop -> thread
        executor.submit(_thread_task).result()

    def loop_pool() -> None:  # consumer -> loop
        asyncio.run_coroutine_threadsafe(greenback.with_portal_run_sync(_portal_task), loop).result()

    assert threading.current_thread() is threading.main_thread()
    out = {"threads pool": _timed(threads_pool), "loop pool": _timed(loop_pool)}
    executor.shutdown()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
