"""Child processes on loopback ports: a free port, a child in its own process group logging to
a file, stopping groups, waiting for a server to answer."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, never one this process handed out before: the kernel may give
    a closed probe's port to the next probe, and a worker's metrics port that was also its web's
    port served the web's /metrics to a test that asked the worker."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def start_logged(log: Path, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    """A child in its own session (so its whole group can be signalled) writing to `log`."""
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_groups(procs: list[subprocess.Popen], timeout: float = 15) -> None:
    """SIGTERM each running process group, then SIGKILL whichever has not ended in `timeout`."""
    running = [p for p in procs if p.poll() is None]
    for proc in running:
        os.killpg(proc.pid, signal.SIGTERM)
    for proc in running:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_until_up(url: str, procs: list[subprocess.Popen | None], timeout: float = 60) -> None:
    """Until `url` answers 200; fails at once if one of `procs` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc is not None and proc.poll() is not None:
                command = " ".join(map(str, proc.args))
                raise RuntimeError(f"{command} exited with {proc.returncode} during start-up")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")
