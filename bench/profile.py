"""Runs py-spy on the web and worker processes during one cell and keeps their hottest frames."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.cells import Spec, run_cell
from bench.clients import Target
from bench.processes import Stack
from bench.stats import AppendLog

PY_SPY = Path(sys.executable).parent / "py-spy"


PROJECT = re.compile(r"\((jobs|engine|config)/")
# Leaf frames that mean "blocked": with --gil py-spy reports the GIL's last holder even while no
# thread holds it, so a thread that just went to sleep in one of these is idle time, not CPU.
WAITING = re.compile(
    r"^(Condition\.wait|Event\.wait|Queue\.get|_worker|EpollSelector\.select|_epoll\.poll|WaitingClient\.wait"
    r"|SyncStream\.read|SocketBuffer\._read_from_socket|Connection\.wait|Thread\._wait_for_tstate_lock"
    r"|_writer|start_background_sweeper\.<locals>\.loop) "  # these two only sleep in C (time.sleep)
)


def top_frames(collapsed: Path, n: int = 15) -> dict[str, Any]:
    """Shares of the busy samples (taken from the thread holding the GIL, idle ones left out):
    self time, inclusive time of any frame (leaving out the roots nearly every sample passes
    through), and inclusive time of the project's own frames."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = idle = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        if WAITING.match(frames[-1]):
            idle += count
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return {"samples": 0}

    def share(pairs: list[tuple[str, int]]) -> list[tuple[str, float]]:
        return [(frame, round(100 * c / total, 1)) for frame, c in pairs[:n]]

    ranked = [(f, c) for f, c in inclusive.most_common() if c < 0.9 * total]
    return {
        "samples": total,
        "idle_samples_left_out": idle,
        "self_pct": share(own.most_common(n)),
        "inclusive_pct": share(ranked),
        "project_inclusive_pct": share([(f, c) for f, c in ranked if PROJECT.search(f)]),
    }


async def record(pid: int, seconds: float, path: Path) -> asyncio.subprocess.Process:
    """py-spy sampling one process for `seconds` (100 Hz, without pausing it) into `path`."""
    return await asyncio.create_subprocess_exec(
        str(PY_SPY), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "100",
        "--nonblocking", "--function", "--format", "raw", "--output", str(path),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


def missing() -> str | None:
    """Why nothing can be profiled, if it cannot."""
    if not PY_SPY.exists() and not shutil.which("py-spy"):
        return "py-spy is not installed (.venv/bin/pip install py-spy)"
    return None


async def profiled_cell(
    stack: Stack, target: Target, spec: Spec, run_dir: Path, log_: AppendLog
) -> dict[str, Any]:
    """The cell once more with py-spy sampling both processes (200 Hz, without pausing them)."""
    if error := missing():
        return {"error": error}
    outputs = {name: run_dir / f"profile-{spec.face}-{spec.tps:g}-{name}.txt" for name in ("web", "worker")}
    spies = [await record(stack.pid(name), spec.duration, path) for name, path in outputs.items()]
    cell = await run_cell(stack, target, spec, log_)
    for spy in spies:
        await spy.wait()
    frames = {name: top_frames(path) for name, path in outputs.items() if path.exists()}
    return {"cell": cell, "frames": frames}
