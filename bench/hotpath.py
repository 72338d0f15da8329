"""What one hot-path read costs the web process: CPU per request and latency of polls of a job
whose live log is in Redis, per face, on one uvicorn process; then HOTPATH_IDLE idle long-pollers
(SEMOSS, on queued jobs) for HOTPATH_IDLE_SECONDS: the web's cores and their answer times.
Measures each web-layer change (`python -m bench.hotpath [label]`), quicker than the whole
benchmark; no worker runs.

Its own database (spool_hotpath) and Redis DB 11; prints one JSON line per face."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.procstat import cpu_seconds
from harness.processes import free_port, start_logged, stop_groups, wait_until_up

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REQUESTS = int(os.environ.get("HOTPATH_REQUESTS", "1500"))
IDLE = int(os.environ.get("HOTPATH_IDLE", "500"))
IDLE_SECONDS = float(os.environ.get("HOTPATH_IDLE_SECONDS", "15"))
ENV = {
    **os.environ,
    "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50),
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/spool_hotpath",
    "REDIS_URL": "redis://127.0.0.1:6379/11",
    "SPOOL_REDIS_PREFIX": "hotpath",
    "SPOOL_REQUESTS_PER_MINUTE": "0",
    "SPOOL_JOBS_PER_MINUTE": "0",
    "SPOOL_MAX_ACTIVE_JOBS": "0",
    "SPOOL_LOG_LEVEL": "WARNING",
}

SETUP = (
    f"IDLE = {IDLE}\n"
    + """
import json
from jobs import chunklog, services
from jobs.models import Job
from engine.types import GenerationRequest
user = services.user_ensure(username="hotpath")
key, secret = services.key_create(owner=user)
engine = services.engine_ensure_offline()
job = services.job_create(owner=user, engine=engine, request=GenerationRequest(messages=[{"role": "user",
    "content": "hi"}]), options={}, face="jobs")
Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING)
chunks = [{"type": "content", "choice": 0, "data": {"content": f"t{i} "}} for i in range(20)]
chunklog.append(str(job.pk), chunks)
hi = GenerationRequest(messages=[{"role": "user", "content": "hi"}])
idle = []
for _ in range(IDLE):
    idle.append(str(services.job_create(owner=user, engine=engine, request=hi, options={}, face="semoss").pk))
print(json.dumps({"access": key.access_key, "secret": secret, "job": str(job.pk), "idle": idle}))
"""
)


def _manage(*args: str) -> str:
    return subprocess.run(
        [str(BIN / "python"), "manage.py", *args],
        cwd=ROOT,
        env=ENV,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def _prepare() -> dict[str, str]:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", "CREATE DATABASE spool_hotpath"],
                   capture_output=True)  # fmt: skip
    _manage("migrate", "-v0")
    return json.loads(_manage("shell", "-c", SETUP).strip().splitlines()[-1])


def _measure(client: httpx.Client, pid: int, send) -> dict[str, float]:
    for _ in range(100):  # warm-up: imports, connections, caches
        send(client)
    latencies = []
    cpu0 = cpu_seconds(pid)
    for _ in range(REQUESTS):
        start = time.perf_counter()
        response = send(client)
        latencies.append(time.perf_counter() - start)
        assert response.status_code == 200, response.text
    cpu = cpu_seconds(pid) - cpu0
    return {
        "web_cpu_us_per_request": round(cpu / REQUESTS * 1e6),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(statistics.quantiles(latencies, n=100)[98] * 1000, 2),
    }


async def _idle(base: str, info: dict, pid: int) -> dict[str, float]:
    """Every waiter polls its queued job in a loop; each answer comes after the long-poll wait."""
    limits = httpx.Limits(max_connections=IDLE, max_keepalive_connections=IDLE)
    answers: list[float] = []
    errors: list[str] = []
    async with httpx.AsyncClient(limits=limits, timeout=60, auth=(info["access"], info["secret"])) as http:

        async def waiter(job: str, until: float) -> None:
            while time.monotonic() < until:
                start = time.monotonic()
                try:
                    response = await http.post(
                        f"{base}/Monolith/api/engine/pixelJobStreaming", data={"jobId": job}
                    )
                except httpx.HTTPError as exc:
                    errors.append(type(exc).__name__)
                    continue
                answers.append(time.monotonic() - start)
                if response.status_code != 200:
                    errors.append(str(response.status_code))

        warm = time.monotonic() + 3
        await asyncio.gather(*(waiter(job, warm) for job in info["idle"]))
        answers.clear()
        errors.clear()
        cpu0, t0, own0 = cpu_seconds(pid), time.monotonic(), time.process_time()
        await asyncio.gather(*(waiter(job, t0 + IDLE_SECONDS) for job in info["idle"]))
        elapsed = time.monotonic() - t0
        cores = (cpu_seconds(pid) - cpu0) / elapsed
        # The load client's own share: past ~0.9 core it, not the web, sets the answer times.
        client_cores = (time.process_time() - own0) / elapsed
    return {
        "web_cores": round(cores, 3),
        "answer_p50_s": round(statistics.median(answers), 3),
        "answer_p99_s": round(statistics.quantiles(answers, n=100)[98], 3),
        "polls": len(answers),
        "client_cores": round(client_cores, 2),
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:3],
    }


def main() -> None:
    label = sys.argv[1] if len(sys.argv) > 1 else "current"
    info = _prepare()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    logs = Path(tempfile.mkdtemp(prefix="hotpath-"))
    argv = [str(BIN / "uvicorn"), "config.asgi:application", "--port", str(port), "--log-level", "warning",
            "--no-access-log"]  # fmt: skip
    web = start_logged(logs / "web.log", argv, ENV)
    try:
        wait_until_up(f"{base}/Monolith/api/config", [web])
        job = info["job"]
        faces = {
            "semoss pixelJobStreaming (Basic)": lambda c: c.post(
                f"{base}/Monolith/api/engine/pixelJobStreaming",
                data={"jobId": job, "cursor": "0"},
                auth=(info["access"], info["secret"]),
            ),
            "native chunks (Bearer)": lambda c: c.get(
                f"{base}/v1/jobs/{job}/chunks?after=-1", headers={"Authorization": f"Bearer {info['secret']}"}
            ),
            "openai models (Bearer)": lambda c: c.get(
                f"{base}/v1/models", headers={"Authorization": f"Bearer {info['secret']}"}
            ),
        }
        with httpx.Client(timeout=30) as client:
            for name, send in faces.items():
                figures = _measure(client, web.pid, send)
                print(json.dumps({"label": label, "read": name, **figures}), flush=True)
        if IDLE:
            figures = asyncio.run(_idle(base, info, web.pid))
            print(
                json.dumps({"label": label, "read": f"{IDLE} idle SEMOSS long-pollers", **figures}),
                flush=True,
            )
    finally:
        stop_groups([web])


if __name__ == "__main__":
    main()
