"""The Batch API under load: `python -m bench.batches [--lines 1000 10000]`.

For each size, one batch of that many chat lines on the fake upstream (16 words each, full
speed): lines per second (created to completed), the web's and the worker's peak resident
memory while it runs (flat in the file's size if files and lines are streamed), and one
interactive stream's time to first token during the batch, against the same stream on the idle
Spool before it. The abuse limits are off, as in every benchmark (bench.processes)."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import openai

from bench.processes import ROOT, Stack
from bench.procstat import rss_bytes


def _group_rss(pid: int) -> int:
    """The resident memory of a process and every process of its group (web.sh and uvicorn)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
            fields = raw[raw.rindex(")") + 2 :].split()
            if int(fields[2]) == pid:  # the process group
                total += rss_bytes(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return total


class PeakMemory:
    def __init__(self, pids: dict[str, int]) -> None:
        self.pids, self.peak = pids, dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], _group_rss(pid))

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def ttft(client: openai.OpenAI, model: str) -> float:
    started = time.perf_counter()
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hi"}], max_completion_tokens=8, stream=True
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
            break
    for _ in stream:
        pass
    return first


def lines(model: str, count: int) -> bytes:
    return b"".join(
        json.dumps(
            {"custom_id": f"line-{i}", "method": "POST", "url": "/v1/chat/completions",
             "body": {"model": model, "messages": [{"role": "user", "content": f"Question {i}"}]}}
        ).encode() + b"\n"
        for i in range(count)
    )  # fmt: skip


def one_batch(stack: Stack, client: openai.OpenAI, model: str, count: int) -> dict[str, Any]:
    # As many idle samples as the batch tends to give (one per half second), so the two medians
    # are alike in noise.
    idle = [ttft(client, model) for _ in range(25)]
    with PeakMemory({"web": stack.pid("web"), "worker": stack.pid("worker")}) as memory:
        uploaded = client.files.create(file=("bench.jsonl", io.BytesIO(lines(model, count))), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        busy: list[float] = []
        while (batch := client.batches.retrieve(batch.id)).status not in ("completed", "failed", "expired"):
            if batch.status == "in_progress":
                busy.append(ttft(client, model))
            time.sleep(0.5)
            stack.check_alive()
    assert batch.status == "completed", batch.errors
    seconds = (batch.completed_at or 0) - batch.created_at
    return {
        "lines": count,
        "file_bytes": uploaded.bytes,
        "seconds": seconds,
        "lines_per_second": round(count / max(seconds, 1), 1),
        "completed": batch.request_counts.completed if batch.request_counts else None,
        "web_peak_rss_mb": round(memory.peak["web"] / 2**20, 1),
        "worker_peak_rss_mb": round(memory.peak["worker"] / 2**20, 1),
        "ttft_idle_ms_median": round(statistics.median(idle) * 1000, 1),
        "ttft_during_batch_ms_median": round(statistics.median(busy) * 1000, 1) if busy else None,
        "ttft_during_batch_ms_max": round(max(busy) * 1000, 1) if busy else None,
        "ttft_samples_during_batch": len(busy),
    }


async def measure(stack: Stack, sizes: list[int]) -> dict[str, Any]:
    model = stack.engine(tokens=16, tps=0)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{stack.web_port}/v1", api_key=stack.secret_key)
    return {"runs": [await asyncio.to_thread(one_batch, stack, client, model, n) for n in sizes]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()
    stack = Stack(ROOT / "artifacts" / "bench-batches", worker_concurrency=128)
    stack.measure(lambda s: measure(s, args.lines), "batches")


if __name__ == "__main__":
    main()
