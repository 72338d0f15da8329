"""The image and the compose file, tested without a Docker engine: the compose file's shape (and
`docker compose config` where the CLI has it), and the entry scripts started with the
environment the image and the compose file give them."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from harness.processes import ROOT, free_port, start_logged, stop_groups, wait_until_up

COMPOSE = ROOT / "docker-compose.yml"
KEY = "compose-test-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGH"


def compose_file() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def image_env() -> dict[str, str]:
    """The ENV instructions of the Dockerfile, in order (later ones win)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def resolved(value: str, given: dict[str, str]) -> str:
    """Compose's ${NAME:-default} and ${NAME:?message}, as `docker compose` resolves them."""

    def one(match: re.Match) -> str:
        name, op, rest = match.group(1), match.group(2), match.group(3)
        if given.get(name):
            return given[name]
        if op == ":?":
            raise KeyError(f"{name}: {rest}")
        return rest or ""

    return re.sub(r"\$\{(\w+)(:[-?])?([^}]*)\}", one, value)


def service_env(service: str, given: dict[str, str]) -> dict[str, str]:
    return {k: resolved(str(v), given) for k, v in compose_file()["services"][service]["environment"].items()}


# ---- the compose file ------------------------------------------------------------------------


def test_web_and_worker_run_the_image_through_the_same_scripts_as_make_run():
    services = compose_file()["services"]
    for name, script in (("web", "scripts/web.sh"), ("worker", "scripts/worker.sh")):
        assert services[name]["build"] == "." and services[name]["image"] == "spool:latest"
        assert services[name]["command"] == ["bash", script]
        assert (ROOT / script).is_file()
    run_sh = (ROOT / "scripts" / "run.sh").read_text()
    assert "scripts/worker.sh" in run_sh and "scripts/web.sh" in run_sh


def test_the_worker_scales_and_everything_waits_for_what_it_needs():
    services = compose_file()["services"]
    worker = services["worker"]
    # Several replicas cannot share a container name or a host port.
    assert "container_name" not in worker and "ports" not in worker
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"], name
    assert services["migrate"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    for name in ("web", "worker"):
        assert services[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}


def test_probes_are_wired_to_readyz_and_the_worker_heartbeat():
    services = compose_file()["services"]
    assert "/readyz" in " ".join(services["web"]["healthcheck"]["test"])
    assert services["worker"]["healthcheck"]["test"] == ["CMD", "bash", "scripts/worker-alive.sh"]
    assert image_env()["SPOOL_WORKER_HEARTBEAT_FILE"]  # the image turns the worker's heartbeat on


def test_compose_refuses_to_start_without_a_secret_key():
    with pytest.raises(KeyError, match="DJANGO_SECRET_KEY"):
        service_env("web", {})


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


@pytest.mark.skipif(_compose_cli() is None, reason="no docker compose CLI on this machine")
def test_docker_compose_accepts_the_file_and_refuses_it_without_a_key():
    cli = _compose_cli()
    assert cli is not None
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    ok = subprocess.run(
        [*cli, "config"], cwd=ROOT, env={**env, "DJANGO_SECRET_KEY": KEY}, capture_output=True
    )
    assert ok.returncode == 0, ok.stderr
    config = yaml.safe_load(ok.stdout)
    assert set(config["services"]) == {"postgres", "redis", "migrate", "web", "worker"}
    refused = subprocess.run([*cli, "config"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert refused.returncode != 0 and "set DJANGO_SECRET_KEY" in refused.stderr


# ---- the entry scripts, as the image runs them -------------------------------------------------


@pytest.mark.e2e
def test_the_scripts_start_web_processes_and_a_worker_that_pass_their_probes(
    django_db_setup, django_db_blocker, tmp_path
):
    from django.db import connection

    db = connection.settings_dict
    env = {
        **os.environ,
        **image_env(),
        **service_env("web", {"DJANGO_SECRET_KEY": KEY}),
        **service_env("worker", {"DJANGO_SECRET_KEY": KEY}),
        # This machine's services and the test run's database, queue and files stand in for the
        # compose network's.
        "PATH": os.environ["PATH"],
        "SPOOL_PYTHON": sys.executable,
        "SPOOL_WEB_HOST": "127.0.0.1",
        "PORT": str(free_port()),
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": os.environ["REDIS_URL"],
        "SPOOL_CELERY_QUEUE": f"{os.environ['SPOOL_CELERY_QUEUE']}-image",
        "SPOOL_WORKER_HEARTBEAT_FILE": str(tmp_path / "worker.alive"),
        "SPOOL_WORKER_HEARTBEAT_SECONDS": "0.5",
        "SPOOL_WEB_CONCURRENCY": "2",
        "SPOOL_WORKER_CONCURRENCY": "4",
        "SPOOL_METRICS_DIR": str(tmp_path / "metrics"),
    }
    assert env["SPOOL_LOG_FORMAT"] == "json" and env["DJANGO_ALLOWED_HOSTS"] == "*"
    web = start_logged(tmp_path / "web.log", ["bash", str(ROOT / "scripts/web.sh")], env)
    worker = start_logged(tmp_path / "worker.log", ["bash", str(ROOT / "scripts/worker.sh")], env)
    try:
        base = f"http://127.0.0.1:{env['PORT']}"
        wait_until_up(f"{base}/healthz", [web, worker])
        # uvicorn's supervisor with one child per SPOOL_WEB_CONCURRENCY.
        children = Path(f"/proc/{web.pid}/task/{web.pid}/children").read_text().split()
        spawned = [c for c in children if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()]
        assert len(spawned) == 2

        probe = compose_file()["services"]["web"]["healthcheck"]["test"][1:]
        probe = [part.replace("127.0.0.1:8000", f"127.0.0.1:{env['PORT']}") for part in probe]
        probe[0] = sys.executable
        done = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert httpx.get(f"{base}/readyz").json()["failed"] == []
        # Both web processes write their metrics where either one's /metrics reads them.
        scraped = httpx.get(f"{base}/metrics")
        assert scraped.status_code == 200 and "spool_readers_waiting 0.0" in scraped.text
        assert len(list(Path(env["SPOOL_METRICS_DIR"]).glob(f"web-{env['PORT']}/*.db"))) >= 2

        # The image logs JSON: uvicorn's supervisor and its web processes alike, nothing else.
        web_lines = [line for line in (tmp_path / "web.log").read_text().splitlines() if line.strip()]
        assert web_lines and all(line.startswith("{") for line in web_lines), web_lines

        alive = compose_file()["services"]["worker"]["healthcheck"]["test"][1:]
        for _ in range(150):  # the worker touches its file once it is ready
            done = subprocess.run(alive, cwd=ROOT, env=env, capture_output=True, text=True)
            if done.returncode == 0:
                break
            time.sleep(0.2)
        assert done.returncode == 0, done.stderr
    finally:
        stop_groups([web, worker])
