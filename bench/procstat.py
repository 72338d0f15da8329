"""Reads the operating system's accounting from /proc: process CPU and memory, machine load."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads included (live and exited)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces or parentheses: split after its closing parenthesis.
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def run_queue_seconds(pid: int) -> float:
    """How long the process's main thread (a web process's event loop) has waited for a CPU
    while it was ready to run (/proc/<pid>/schedstat): the machine's other work, not its own."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (user, nice, system, irq, softirq, steal)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / TICKS


def describe_code(root: Path) -> str:
    """The commit measured, and whether the working tree had uncommitted changes (read-only git)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True)
    changed = len([line for line in dirty.stdout.splitlines() if not line.endswith("bench/")])
    return head.stdout.strip() + (f" + {changed} uncommitted changes" if changed else "")


def describe_machine() -> dict[str, object]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "?"
    )
    mhz = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("cpu MHz")), "?"
    )
    mem_kib = int(Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "cpu_mhz": mhz,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def all_processes_cpu() -> dict[int, tuple[str, float]]:
    """Every live process: (a short name from its command line, CPU seconds)."""
    out: dict[int, tuple[str, float]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (
                Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            )
            out[int(entry.name)] = (_short(cmdline.strip()), cpu_seconds(int(entry.name)))
        except (OSError, ValueError):
            continue  # gone meanwhile, or a kernel thread
    return out


def _short(cmdline: str) -> str:
    # "postgres: 15/main: postgres spool_bench 127.0.0.1(5432) idle" -> "postgres: spool_bench"
    if cmdline.startswith("postgres: "):
        words = cmdline.split()
        return f"postgres: {words[3]}" if len(words) > 3 else "postgres: " + " ".join(words[2:])
    words = [w.rsplit("/", 1)[-1] for w in cmdline.split()[:4]]
    return " ".join(words)[:60] or "?"


def top_others(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
               ours: set[int], n: int = 4) -> list[tuple[str, float]]:  # fmt: skip
    """The processes, other than ours, that used the most CPU between two readings (seconds)."""
    used: dict[str, float] = {}
    for pid, (name, seconds) in after.items():
        if pid in ours:
            continue
        spent = seconds - before.get(pid, (name, 0.0))[1]
        if spent > 0:
            used[name] = used.get(name, 0.0) + spent
    return sorted(((k, round(v, 2)) for k, v in used.items()), key=lambda kv: -kv[1])[:n]
