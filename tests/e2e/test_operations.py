"""What an operator runs Spool with, on real processes started by the same scripts as `make run`:
probes, worker liveness, JSON logs carrying the job id."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import fakeupstream
from harness.processes import ROOT, free_port, wait_until_up
from tests.e2e.helpers import Frontend
from tests.e2e.test_engines_semoss import API_KEY, Upstream, new_key
from tests.servers import running_spool

pytestmark = pytest.mark.e2e

ROOT_WARNING = (
    r"\S*celery/platforms.py:\d+: SecurityWarning: You're running the worker with superuser.*?uid,\n"
)


@pytest.fixture(scope="module")
def ops(django_db_setup, django_db_blocker, tmp_path_factory):
    logs = tmp_path_factory.mktemp("ops-logs")
    with running_spool(
        django_db_blocker,
        logs,
        SPOOL_LOG_FORMAT="json",
        SPOOL_LOG_LEVEL="INFO",
        SPOOL_WORKER_HEARTBEAT_FILE=str(logs / "worker.alive"),
        SPOOL_WORKER_HEARTBEAT_SECONDS="0.5",
        SPOOL_WORKER_METRICS_PORT=str(free_port()),
    ) as running:
        yield running


def worker_alive(spool, **env: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SPOOL_WORKER_HEARTBEAT_FILE": spool.processes.env["SPOOL_WORKER_HEARTBEAT_FILE"],
        **env,
    }
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "worker-alive.sh")], env=env, capture_output=True, text=True
    )


def json_lines(log: Path) -> list[dict]:
    """Every line of the log that is a JSON object; the banner Celery prints is not logging."""
    lines = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_the_probes_answer_over_http(ops):
    assert httpx.get(f"{ops.base_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{ops.base_url}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok", "broker": "ok"}


def test_every_log_line_is_json_and_a_jobs_lines_carry_its_id(ops):
    client = Frontend(ops, ops.alice)
    job_id = client.submit(ops.engine_id, "windmills", {"max_completion_tokens": 5})
    polls = client.stream(job_id)
    assert polls[-1]["status"] == "ProgressComplete"

    web_log, worker_log = ops.processes.logs / "web.log", ops.processes.logs / "worker.log"
    deadline = time.monotonic() + 10  # the worker's last lines may still be on their way
    while time.monotonic() < deadline:
        web, worker = json_lines(web_log), json_lines(worker_log)
        if any(line.get("job_id") == job_id and "succeeded" in line["message"] for line in worker):
            break
        time.sleep(0.2)
    for line in web + worker:
        assert {"timestamp", "level", "logger", "message"} <= line.keys(), line
    created = [line for line in web if line.get("job_id") == job_id]
    assert [line["message"] for line in created] == ["job created (engine spool-offline, face semoss)"]
    ran = [line for line in worker if line.get("job_id") == job_id]
    assert any("succeeded" in line["message"] for line in ran), worker
    # Lines of no job carry no job id (uvicorn's start-up, Celery's "ready").
    assert any("job_id" not in line for line in web) and any("job_id" not in line for line in worker)
    # Nothing else is printed (no Celery banner): no line a log pipeline would fail to parse.
    # Except Celery's warning about running as root (as the tests here do), printed before
    # logging is set up; the image runs as a user of its own.
    for log in (web_log, worker_log):
        text = re.sub(ROOT_WARNING, "", log.read_text(), flags=re.DOTALL)
        stray = [x for x in text.splitlines() if x.strip() and not x.startswith("{")]
        assert stray == [], stray


def wait_for_liveness(spool, alive: bool, **env: str) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + 30
    while (probe := worker_alive(spool, **env)).returncode != (0 if alive else 1):
        assert time.monotonic() < deadline, probe
        time.sleep(0.2)
    return probe


def test_the_worker_is_alive_until_it_stops(ops):
    alive = wait_for_liveness(ops, True)  # it touches the file once it is ready
    assert alive.stdout.startswith("worker alive: heartbeat")

    ops.processes.stop_worker()  # a warm shutdown removes the file at once
    dead = worker_alive(ops)
    assert dead.returncode == 1
    assert "does not exist (not started yet, or stopped)" in dead.stderr
    ops.processes.start_worker()
    wait_for_liveness(ops, True)


def test_a_killed_worker_is_dead_once_its_heartbeat_is_old(ops):
    wait_for_liveness(ops, True)
    ops.processes.kill_worker()  # no shutdown: the file stays behind and ages
    dead = wait_for_liveness(ops, False, SPOOL_WORKER_ALIVE_SECONDS="1")
    assert "last touched" in dead.stderr
    # A new container starts with a fresh /tmp; here the stale file would pass for the new worker.
    Path(ops.processes.env["SPOOL_WORKER_HEARTBEAT_FILE"]).unlink()
    ops.processes.start_worker()
    wait_for_liveness(ops, True)


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    response = httpx.get(url)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_web_and_worker_metrics_move_when_a_job_runs(ops):
    web_url = f"{ops.base_url}/metrics"
    worker_url = f"http://127.0.0.1:{ops.processes.env['SPOOL_WORKER_METRICS_PORT']}/metrics"
    engine = {"engine": "spool-offline"}
    done = {**engine, "status": "succeeded"}
    wait_until_up(worker_url, [ops.processes.worker])
    web_before, worker_before = scrape(web_url), scrape(worker_url)

    client = Frontend(ops, ops.alice)
    job_id = client.submit(ops.engine_id, "windmills", {"max_completion_tokens": 5})
    assert client.stream(job_id)[-1]["status"] == "ProgressComplete"

    web_after = scrape(web_url)
    created = {**engine, "face": "semoss"}
    assert value(web_after, "spool_jobs_created_total", **created) == (
        value(web_before, "spool_jobs_created_total", **created) + 1
    )
    # The polls above waited on the job's wake channel; none is waiting now.
    assert value(web_after, "spool_readers_waiting") == 0
    assert ("spool_queue_depth", frozenset({("queue", ops.processes.env["SPOOL_CELERY_QUEUE"])})) in web_after

    deadline = time.monotonic() + 10  # the worker counts the job once its task has returned
    while True:
        worker_after = scrape(worker_url)
        if value(worker_after, "spool_jobs_ended_total", **done) > value(
            worker_before, "spool_jobs_ended_total", **done
        ):
            break
        assert time.monotonic() < deadline, worker_after
        time.sleep(0.2)
    assert value(worker_after, "spool_jobs_ended_total", **done) == (
        value(worker_before, "spool_jobs_ended_total", **done) + 1
    )
    assert value(worker_after, "spool_jobs_started_total", **engine) == (
        value(worker_before, "spool_jobs_started_total", **engine) + 1
    )
    for name, labels in (
        ("spool_job_duration_seconds_count", done),
        ("spool_job_time_to_first_token_seconds_count", engine),
    ):
        assert value(worker_after, name, **labels) == value(worker_before, name, **labels) + 1, name
    # at least the usage and finish chunks went through the worker's batched writer
    assert (
        value(worker_after, "spool_chunks_appended_total")
        >= value(worker_before, "spool_chunks_appended_total") + 2
    )
    running = [v for (name, _), v in worker_after.items() if name == "spool_worker_generations_running"]
    assert running and sum(running) == 0


def worker_scrape_until(url: str, moved: Callable[[dict], bool]) -> dict:
    """Scrapes the worker until `moved` holds: it counts a job once its task has returned."""
    deadline = time.monotonic() + 15
    while not moved(samples := scrape(url)):
        assert time.monotonic() < deadline, samples
        time.sleep(0.2)
    return samples


def test_upstream_retries_and_errors_are_counted_by_code(ops, django_db_blocker):
    worker_url = f"http://127.0.0.1:{ops.processes.env['SPOOL_WORKER_METRICS_PORT']}/metrics"
    wait_until_up(worker_url, [ops.processes.worker])
    client = Frontend(ops, ops.alice)
    with fakeupstream.running(port=0, api_key=API_KEY) as base_url:
        upstream = Upstream(base_url, django_db_blocker)
        before = scrape(worker_url)
        # A 503, then a stream: one retry (code 503), and the job succeeds.
        retried = upstream.engine("ops-retry", f"fake?tokens=3&fail=503&fail_times=1&key={new_key()}")
        assert client.stream(client.submit(retried, "again"))[-1]["status"] == "ProgressComplete"
        after = worker_scrape_until(
            worker_url,
            lambda s: (
                value(s, "spool_upstream_retries_total", code="503")
                > value(before, "spool_upstream_retries_total", code="503")
            ),
        )
        assert value(after, "spool_upstream_retries_total", code="503") == (
            value(before, "spool_upstream_retries_total", code="503") + 1
        )
        # A 400 is not retried: the job fails, counted once as an upstream error.
        refused = upstream.engine("ops-refused", f"fake?fail=400&message=no&key={new_key()}")
        assert client.stream(client.submit(refused, "no"))[-1]["status"] == "Error"
        errors_before = value(after, "spool_upstream_errors_total", code="upstream_error")
        final = worker_scrape_until(
            worker_url,
            lambda s: value(s, "spool_upstream_errors_total", code="upstream_error") > errors_before,
        )
        assert value(final, "spool_upstream_errors_total", code="upstream_error") == errors_before + 1
        assert sum(v for (name, _), v in final.items() if name == "spool_upstream_retries_total") == sum(
            v for (name, _), v in after.items() if name == "spool_upstream_retries_total"
        )


def test_a_running_generation_shows_in_the_workers_gauge(ops, django_db_blocker):
    worker_url = f"http://127.0.0.1:{ops.processes.env['SPOOL_WORKER_METRICS_PORT']}/metrics"
    wait_until_up(worker_url, [ops.processes.worker])

    def running(samples: dict) -> float:
        return sum(v for (name, _), v in samples.items() if name == "spool_worker_generations_running")

    client = Frontend(ops, ops.alice)
    with fakeupstream.running(port=0, api_key=API_KEY) as base_url:
        # 100 tokens at 5 a second: twenty seconds of generation, ended by the cancel below.
        upstream = Upstream(base_url, django_db_blocker)
        slow = upstream.engine("ops-slow", f"fake?tokens=100&tps=5&key={new_key()}")
        job_id = client.submit(slow, "slowly", {"max_completion_tokens": 100})
        worker_scrape_until(worker_url, lambda s: running(s) == 1)
        client.post("/engine/terminate", jobId=job_id)
        worker_scrape_until(worker_url, lambda s: running(s) == 0)
