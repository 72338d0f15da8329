"""The worker's liveness file follows its event loop: while the loop answers, the file is touched;
a loop blocked on purpose (sync code holding it) stops the touches, and scripts/worker-alive.sh
then reports the worker dead; once the loop runs again, the worker is alive again."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from harness.processes import ROOT
from jobs import liveness
from jobs.worker import runtime

# Bounds each wait so a broken probe fails the test instead of hanging it; not a measurement.
BOUND_SECONDS = 30
BLOCKED_SECONDS = 4.0


def alive(path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPOOL_WORKER_HEARTBEAT_FILE": str(path), "SPOOL_WORKER_ALIVE_SECONDS": "1"}
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "worker-alive.sh")], env=env, capture_output=True, text=True
    )


def wait_until(path: Path, want_alive: bool) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + BOUND_SECONDS
    while (probe := alive(path)).returncode != (0 if want_alive else 1):
        assert time.monotonic() < deadline, probe
        time.sleep(0.1)
    return probe


@pytest.fixture
def heartbeat(tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "ANSWER_SECONDS", 0.3)
    loop = runtime.loop()  # registers the loop's probe
    path = tmp_path / "worker.alive"
    liveness.start(str(path), 0.1)
    yield loop, path
    liveness.stop(str(path))


def test_the_event_loop_is_one_of_the_liveness_probes():
    runtime.loop()
    assert runtime.answers in liveness._probes


def test_a_worker_whose_event_loop_is_blocked_is_reported_dead_then_alive_again(heartbeat):
    loop, path = heartbeat
    wait_until(path, True)
    loop.call_soon_threadsafe(time.sleep, BLOCKED_SECONDS)  # sync code holding the loop
    dead = wait_until(path, False)
    assert "last touched" in dead.stderr
    assert wait_until(path, True).stdout.startswith("worker alive")  # the loop runs again
