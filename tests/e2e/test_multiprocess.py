"""Two web processes and two worker processes on one queue, one database and one Redis: a job is
created through one web process, read, cancelled and resumed through either, and a worker
killed with SIGKILL leaves the other carrying its own jobs. Every reader's chunks are compared
with what Postgres stored: nothing lost, nothing duplicated."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import NO_EOT
from tests.servers import Processes, Spool, keep_logs_with_tracebacks, start_spool

pytestmark = pytest.mark.e2e

# Two generations per worker: four jobs fill both, whichever takes its messages first.
SLOTS = 2


@pytest.fixture(scope="module", params=["redis", "cluster"])
def pair(request, django_db_setup, django_db_blocker, tmp_path_factory):
    """Spool A (web + worker) and a second web and worker, B, on A's queue and settings, with
    the chunk log on one Redis, then on a Redis Cluster. Short heartbeats, so a killed worker's
    jobs are ended quickly by the survivor's sweeper."""
    chunk_log = request.getfixturevalue("redis_cluster").env() if request.param == "cluster" else {}
    a = start_spool(
        django_db_blocker,
        tmp_path_factory.mktemp(f"pair-{request.param}-a-logs"),
        concurrency=SLOTS,
        SPOOL_HEARTBEAT_TTL_SECONDS="2",
        SPOOL_SWEEP_EVERY_SECONDS="0.5",
        **chunk_log,
    )
    b = Processes(
        env=a.processes.env, logs=tmp_path_factory.mktemp(f"pair-{request.param}-b-logs"), concurrency=SLOTS
    )
    try:
        b.start_worker()
        b.start_web()
        yield a, b
    finally:
        b.stop()
        a.processes.stop()
        keep_logs_with_tracebacks(a)


def _client(base_url: str, spool: Spool) -> httpx.Client:
    headers = {"Authorization": f"Bearer {spool.alice.secret_key}"}
    return httpx.Client(base_url=base_url, headers=headers, timeout=60)


def _create(http: httpx.Client, spool: Spool, tokens: int) -> str:
    body = {
        "engine": spool.engine_id,
        "command": "go on",
        "parameters": {"max_completion_tokens": tokens, **NO_EOT},
    }
    response = http.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _poll_all(http: httpx.Client, job_id: str, into: list[dict]) -> None:
    """Long-poll /chunks with `after` until the job is done."""
    after = -1
    for _ in range(2000):
        page = http.get(f"/v1/jobs/{job_id}/chunks", params={"after": after, "wait": 5}).json()
        into += page["chunks"]
        after = page["last_seq"]
        if page["done"]:
            return
    raise AssertionError(f"job {job_id} never done")


def _events(
    http: httpx.Client, job_id: str, *, last_event_id: str | None = None, stop_after: int | None = None
):
    """The chunks /events sends (resumed after last_event_id), up to stop_after of them or the end."""
    chunks: list[dict] = []
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    with http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200
        frame: dict[str, Any] = {}
        for line in response.iter_lines():
            if line:
                name, _, value = line.partition(": ")
                frame[name] = value
                continue
            if "id" in frame:  # a chunk: event "chunk", or "error" for an error chunk
                chunks.append(json.loads(frame["data"]))
                if stop_after is not None and len(chunks) >= stop_after:
                    return chunks
            if frame.get("event") == "done":
                return chunks
            frame = {}
    return chunks


def _stored(job_id: str) -> list[dict]:
    from jobs.models import Job

    return Job.objects.get(pk=job_id).chunks


def _unseq(chunks: list[dict]) -> list[dict]:
    return [{k: v for k, v in c.items() if k != "seq"} for c in chunks]


def test_a_job_made_through_one_web_is_read_cancelled_and_resumed_through_either(pair, pg):
    from jobs.models import Job

    a, b = pair
    web_a, web_b = _client(a.base_url, a), _client(b.base_url, a)
    job_id = _create(web_a, a, tokens=3000)

    polled: list[dict] = []
    poller = threading.Thread(target=_poll_all, args=(web_b, job_id, polled))
    poller.start()
    first = _events(web_b, job_id, stop_after=10)  # B's stream, dropped after ten chunks
    cancelled = web_b.post(f"/v1/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    resumed = _events(web_a, job_id, last_event_id=str(first[-1]["seq"]))  # on A, where B stopped
    poller.join(timeout=60)
    assert not poller.is_alive()

    job = Job.objects.get(pk=job_id)
    assert job.status == Job.Status.CANCELLED
    stored = job.chunks
    assert [c["type"] for c in stored].count("error") == 1 and stored[-1]["type"] == "error"
    assert [c["seq"] for c in first + resumed] == list(range(len(stored)))
    assert _unseq(first + resumed) == stored
    assert [c["seq"] for c in polled] == list(range(len(stored)))
    assert _unseq(polled) == stored


def test_a_killed_worker_leaves_the_other_carrying_its_own_jobs(pair, pg):
    from jobs.models import Job

    a, b = pair
    webs = [_client(a.base_url, a), _client(b.base_url, a)]
    # 1,500 tokens at the suite's 150 tok/s: about 10 s, long enough to kill a worker mid-way.
    ids = [_create(webs[i % 2], a, tokens=1500) for i in range(2 * SLOTS)]
    readers: dict[str, list[dict]] = {job_id: [] for job_id in ids}
    threads = [
        threading.Thread(target=_poll_all, args=(webs[(i + 1) % 2], job_id, readers[job_id]))
        for i, job_id in enumerate(ids)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while not all(readers.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(readers.values()), "every job has started, two on each worker"

    a.processes.kill_worker()
    for thread in threads:
        thread.join(timeout=90)
    assert not any(thread.is_alive() for thread in threads)

    jobs = {str(job.pk): job for job in Job.objects.filter(pk__in=ids)}
    outcomes = sorted((job.status, job.finish_reason) for job in jobs.values())
    # The survivor finished its own two; its sweeper ended the dead worker's two, once each.
    assert outcomes == sorted(
        [(Job.Status.FAILED, "worker_lost")] * SLOTS + [(Job.Status.SUCCEEDED, "length")] * SLOTS
    )
    for job_id, got in readers.items():
        stored = jobs[job_id].chunks
        assert [c["seq"] for c in got] == list(range(len(stored)))
        assert _unseq(got) == stored
        assert sum(c["type"] in ("finish", "error") for c in stored) == 1
    assert b.worker.poll() is None, "the other worker carries on"
