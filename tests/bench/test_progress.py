"""The benchmark's progress lines: one when a step starts, one with its counts when it ends."""

from __future__ import annotations

import io
from collections.abc import Callable

from bench.progress import Progress, clock_time


def ticking(*times: float) -> Callable[[], float]:
    """A clock that reads the given times in turn, so that the lines are known to the letter."""
    readings = iter(times)
    return lambda: next(readings)


def test_each_step_says_its_number_what_it_counted_its_rate_and_the_time_so_far():
    out = io.StringIO()
    # Readings: the start; step 1 starts (2 reads), ends (2); step 2 starts (2), ends (2).
    progress = Progress(3, out=out, clock=ticking(0, 5, 5, 17.5, 17.5, 18, 18, 200, 200))
    progress.start("cell sse c=10 full speed, 12 s")
    progress.done(250, "generations", errors=2, detail="ttft {'p50': 4.1}")
    progress.start("idle CPU, 5 s")
    progress.done(detail="cores: 0.01")
    assert out.getvalue().splitlines() == [
        "[1/3 5.0 s] cell sse c=10 full speed, 12 s",
        "[1/3 17.5 s]   250 generations in 12.5 s, 20.0/s, 2 errors; ttft {'p50': 4.1}",
        "[2/3 18.0 s] idle CPU, 5 s",
        "[2/3 3m20s]   done in 3m02s; cores: 0.01",
    ]


def test_a_step_that_took_no_time_has_no_rate():
    out = io.StringIO()
    progress = Progress(1, out=out, clock=ticking(0, 1, 1, 1, 1))
    progress.start("warming up")
    progress.done(6, "generations")
    assert out.getvalue().splitlines()[-1] == "[1/1 1.0 s]   6 generations in 0.0 s, 0 errors"


def test_it_writes_to_stderr_and_leaves_stdout_to_the_report(capsys):
    progress = Progress(2)
    progress.start("worker capacity: 50 generations")
    progress.done(50, "generations finished")
    captured = capsys.readouterr()
    assert captured.out == ""
    started, ended = captured.err.splitlines()
    assert started.startswith("[1/2 ") and started.endswith("] worker capacity: 50 generations")
    assert ended.startswith("[1/2 ") and "]   50 generations finished in " in ended
    assert ended.endswith(", 0 errors")


def test_times_read_short_at_every_scale():
    assert [clock_time(s) for s in (0.04, 59.94, 65, 3599, 3600, 7384)] == [
        "0.0 s",
        "59.9 s",
        "1m05s",
        "59m59s",
        "1h00m",
        "2h03m",
    ]
