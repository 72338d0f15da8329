"""Percentiles, and the worker's timed appends read back and matched to what clients received."""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.clients import Gen


def pct(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), linearly interpolated; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(values: Sequence[float], *qs: float) -> dict[str, float | None]:
    """Percentiles of seconds, in milliseconds."""
    return {f"p{q:g}": None if (v := pct(values, q)) is None else round(v * 1000, 3) for q in qs}


@dataclass(slots=True)
class Append:
    first: int
    count: int
    before: float  # monotonic time the worker started the Redis round trip
    after: float  # ... and got its answer
    end: int  # 1: the batch ended the job with finish, 2: with error


@dataclass
class AppendLog:
    """Reads the worker shim's file incrementally (see bench/workershim.py)."""

    path: Path
    offset: int = 0
    shim_cpu: float = 0.0  # the shim writer thread's CPU so far (seconds)
    by_job: dict[str, list[Append]] = field(default_factory=lambda: defaultdict(list))

    def read_new(self) -> list[tuple[str, Append]]:
        with self.path.open() as f:
            f.seek(self.offset)
            text = f.read()
        cut = text.rfind("\n") + 1  # a half-written last line waits for the next read
        self.offset += len(text[:cut].encode())
        new = []
        for line in text[:cut].splitlines():
            if line.startswith("# cpu "):
                self.shim_cpu = float(line[6:])
                continue
            job, first, count, before, after, end = line.split()
            item = Append(int(first), int(count), float(before), float(after), int(end))
            self.by_job[job].append(item)
            new.append((job, item))
        return new


def delivery_latencies(gens: Iterable[Gen], log: AppendLog) -> tuple[list[float], int]:
    """Seconds from the worker starting the append that carried a chunk to the client receiving it;
    and how many received chunks had no matching append (should be 0)."""
    out: list[float] = []
    unmatched = 0
    for gen in gens:
        appends = log.by_job.get(gen.job_id)
        if not appends:
            unmatched += len(gen.seqs)
            continue
        firsts = [a.first for a in appends]
        for seq, at in zip(gen.seqs, gen.times, strict=True):
            i = bisect.bisect_right(firsts, seq) - 1
            if i < 0 or seq >= appends[i].first + appends[i].count:
                unmatched += 1
                continue
            out.append(at - appends[i].before)
    return out, unmatched
