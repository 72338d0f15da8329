"""Runs the Celery worker with each chunk-log append timed, for delivery latency; else untouched."""

# The product records no per-chunk write time, so this wraps jobs.chunklog.append_many (what the
# worker's log writer calls for every batch of every job) and appends "job first_seq count t_before
# t_after end" lines to the file named by SPOOL_BENCH_APPEND_LOG. The hot path only stores a
# tuple; a thread writes the file every half second and reports its own CPU time ("# cpu <s>") so
# the benchmark can subtract it.

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

_records: list[tuple[str, int, int, float, float, int]] = []
_END = {"finish": 1, "error": 2}


def _install() -> None:
    from jobs import chunklog

    original = chunklog.append_many

    async def timed_append_many(batch: Any, **options: Any) -> Any:
        before = time.monotonic()
        replies = await original(batch, **options)
        after = time.monotonic()
        for (job_id, chunks), appended in zip(batch, replies, strict=True):
            if chunks:
                end = _END.get(chunks[-1]["type"], 0)
                _records.append((job_id, appended.length - len(chunks), len(chunks), before, after, end))
        return replies

    chunklog.append_many = timed_append_many  # the writer calls it as chunklog.append_many(...)


def _writer(path: str) -> None:
    with open(path, "a", buffering=1 << 16) as out:
        while True:
            time.sleep(0.5)
            # list.append is atomic and only adds at the end, so no lock is needed here.
            taken = _records[:]
            del _records[: len(taken)]
            lines = [f"{j} {s} {n} {a:.6f} {b:.6f} {e}\n" for j, s, n, a, b, e in taken]
            lines.append(f"# cpu {time.thread_time():.6f}\n")
            out.writelines(lines)
            out.flush()


def main() -> None:
    _install()
    threading.Thread(target=_writer, args=(os.environ["SPOOL_BENCH_APPEND_LOG"],), daemon=True).start()
    from celery.__main__ import main as celery_main

    sys.argv = ["celery", *sys.argv[1:]]
    celery_main()


if __name__ == "__main__":
    main()
