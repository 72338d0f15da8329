"""Progress of a long benchmark on stderr: a line when a step starts, a line with what it counted
when it ends (count, rate, errors), each with the step's number and the time since the start."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def clock_time(seconds: float) -> str:
    """12.3 s, 4m05s, 1h02m: short enough for a line that says several things."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """Steps numbered out of `total` (the most the run can take: a step that ends the run early
    leaves the rest unused). The clock is injected so that a test can give it fixed times."""

    def __init__(
        self, total: int, *, out: TextIO | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.total = total
        self.step = 0
        self._out = out
        self._clock = clock
        self._started = self._step_started = clock()

    def start(self, what: str) -> None:
        self.step += 1
        self._step_started = self._clock()
        self._write(what)

    def done(self, count: int | None = None, unit: str = "", *, errors: int = 0, detail: str = "") -> None:
        """The step that started last has ended, having counted `count` `unit` (and `errors`);
        a step that counts nothing (a measurement of the idle machine) gives no count."""
        seconds = self._clock() - self._step_started
        if count is None:
            line = f"  done in {clock_time(seconds)}"
        else:
            rate = f", {count / seconds:,.1f}/s" if seconds > 0 else ""
            line = f"  {count:,} {unit} in {clock_time(seconds)}{rate}, {errors:,} errors"
        self._write(f"{line}; {detail}" if detail else line)

    def _write(self, text: str) -> None:
        elapsed = clock_time(self._clock() - self._started)
        out = self._out or sys.stderr  # looked up late: pytest's capsys replaces sys.stderr
        print(f"[{self.step}/{self.total} {elapsed}] {text}", file=out, flush=True)
