"""Redis restarted mid-stream, Postgres briefly unreachable, and Postgres's answer to the
worker lost on the way back: clients get a clear 503 in the face's own shape, never a 500;
everything recovers by itself; nothing is lost."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.e2e.helpers import NO_EOT, Frontend, llm_pixel, record_figures, text_of
from tests.faults import CuttableProxy, OwnRedis
from tests.servers import keep_logs_with_tracebacks, running_spool, start_spool

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def outages(django_db_setup, django_db_blocker, tmp_path_factory):
    from django.db import connection

    own_redis = OwnRedis()
    own_redis.start()
    db = connection.settings_dict
    proxy = CuttableProxy(int(db["PORT"] or 5432))
    running = start_spool(
        django_db_blocker,
        tmp_path_factory.mktemp("outage-logs"),
        REDIS_URL=own_redis.url,
        DATABASE_URL=f"postgres://{db['USER']}@127.0.0.1:{proxy.port}/{db['NAME']}",
        # A live poll reads the job from Redis alone, and its key from the key cache while the
        # cache holds it: 2 s by default, which a loaded machine spent between the submit and
        # the poll during the Postgres outage (a 503 on the key's lookup failed the test).
        SPOOL_KEY_CACHE_SECONDS="60",
    )
    try:
        yield running, own_redis, proxy
    finally:
        proxy.restore()
        running.processes.stop()
        own_redis.kill()
        keep_logs_with_tracebacks(running)


def poll_until(client: Frontend, job_id: str, cursor: int, until: float) -> tuple[list[dict], list[int], int]:
    """Poll with the cursor extension; returns (messages, HTTP statuses seen, cursor)."""
    messages, statuses = [], []
    while time.monotonic() < until:
        response = client.http.post("/engine/pixelJobStreaming", data={"jobId": job_id, "cursor": cursor})
        statuses.append(response.status_code)
        body = response.json()
        if response.status_code == 200:
            messages += body["message"]
            cursor = body["cursor"]
            if any("finish_reason" in m["data"] for m in body["message"]):
                break
        else:
            assert body.get("status") == "Unavailable" and "Redis" in body["errorMessage"], (
                response.status_code,
                body,
            )
            time.sleep(0.2)
    return messages, statuses, cursor


def read_across_an_outage(client: Frontend, job_id: str, stop, start) -> tuple[list[dict], list[int]]:
    """Poll a running job with a cursor, stop() Redis for a while, start() it again, and poll
    to the end; returns (every message read, the HTTP statuses after the stop)."""
    # The module's worker may still be starting (its offline model takes a moment to build, more
    # on a busy machine): wait for the job's first chunks, then read on for a while.
    before, cursor, started_by = [], 0, time.monotonic() + 60
    while not before and time.monotonic() < started_by:
        before, _, cursor = poll_until(client, job_id, cursor, time.monotonic() + 1.0)
    assert before, "some chunks before the outage"
    stop()
    during, statuses, cursor = poll_until(client, job_id, cursor, time.monotonic() + 1.5)
    start()
    after, more = [], []
    if not any("finish_reason" in m["data"] for m in during):  # (it may end from Postgres meanwhile)
        after, more, _ = poll_until(client, job_id, cursor, time.monotonic() + 60)
    return before + during + after, statuses + more


def assert_read_once(
    spool, job_id: str, messages: list[dict], statuses: list[int], *, tokens: int, figures: str
):
    """Outages answered 503, never 500; the worker lived on; the reader saw every chunk exactly
    once, in order (cursors), and Postgres has the same text; the figures go to
    artifacts/<figures>.json. Returns the job."""
    from jobs.models import Job

    assert 503 in statuses and 500 not in statuses
    assert spool.processes.worker.poll() is None, "the worker survives the outage"
    assert messages[-1]["data"] == {"finish_reason": "length"}
    job = Job.objects.get(pk=job_id)
    assert job.status == Job.Status.SUCCEEDED
    assert text_of(messages) == job.result["choices"][0]["content"]
    assert job.usage["output_tokens"] == tokens
    record_figures(spool, figures, polls=len(statuses),
                   answers_503=statuses.count(503), answers_500=0, chunks_read=len(messages),
                   lost=0, duplicated=0)  # fmt: skip
    return job


def test_a_redis_restart_mid_stream_loses_nothing(outages, pg):
    spool, own_redis, _ = outages
    client = Frontend(spool, spool.alice)
    job_id = client.submit(spool.engine_id, "through the storm", {"max_completion_tokens": 300, **NO_EOT})
    # Started again empty: no persistence, as the machine's Redis runs.
    messages, statuses = read_across_an_outage(client, job_id, own_redis.kill, own_redis.start)
    assert_read_once(spool, job_id, messages, statuses, tokens=300, figures="redis-restart")


def test_postgres_unreachable_gets_a_503_and_recovers(outages):
    spool, _, proxy = outages
    client = Frontend(spool, spool.alice)
    job_id = client.submit(spool.engine_id, "steady", {"max_completion_tokens": 200, **NO_EOT})

    proxy.cut()
    try:
        # A live job is read from Redis alone: its polls carry on while the database is away.
        live = client.http.post("/engine/status", data={"jobId": job_id})
        assert live.status_code == 200 and live.json()["status"] in ("Submitted", "InProgress", "Streaming")
        response = client.http.post(
            "/engine/runPixelAsync",
            data={"expression": llm_pixel(spool.engine_id, "another", {}), "insightId": "new"},
        )
        assert response.status_code == 503
        assert response.json()["status"] == "Unavailable" and "database" in response.json()["errorMessage"]
        v1 = httpx.get(
            f"{spool.base_url}/v1/jobs/{job_id}",
            headers={"Authorization": f"Bearer {spool.alice.secret_key}"},
        )
        assert v1.status_code in (503, 404)  # 404 until the /v1/jobs face is mounted
        if v1.status_code == 503:
            assert v1.json()["error"]["code"] == "service_unavailable"
        time.sleep(1.5)  # the job finishes while the database is away
    finally:
        proxy.restore()

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = client.post("/engine/status", jobId=job_id)
        if body["status"] == "ProgressComplete":
            break
        time.sleep(0.3)
    assert body["status"] == "ProgressComplete"
    result = client.post("/engine/result", jobId=job_id)
    assert result["pixelReturn"][0]["output"]["numberOfTokensInResponse"] == 200


def test_a_postgres_blip_costs_the_web_one_503_not_one_per_idle_pooled_connection(outages):
    """A blip (every connection dropped, Postgres reachable again at once) breaks every idle
    connection of the web's pool. The first request that meets one answers 503 and has the web
    test the others at once (psycopg_pool's check()), so the requests after it are served; before,
    each dead idle connection answered one request 503 before the pool dropped it."""
    spool, _, proxy = outages
    url = f"{spool.base_url}/v1/chat/completions"  # a list of stored completions: a query
    headers = {"Authorization": f"Bearer {spool.alice.secret_key}"}

    def status(_: object = None) -> int:
        return httpx.get(url, headers=headers, timeout=30).status_code

    # Requests at once make the web's pool grow, then leave it holding those connections idle
    # (an earlier test's cut may have left dead ones to go through first). Bursts until it has
    # grown: on a quiet machine each query is over so soon that one burst may need only a few.
    deadline = time.monotonic() + 60
    with ThreadPoolExecutor(32) as clients:
        while set(clients.map(status, range(96))) != {200} or proxy.connections < 8:
            assert time.monotonic() < deadline, "the web never served a burst whole on a grown pool"

    proxy.cut()
    proxy.restore()
    first = httpx.get(url, headers=headers, timeout=30)
    assert first.status_code == 503 and first.json()["error"]["code"] == "service_unavailable"
    time.sleep(int(first.headers["Retry-After"]))  # as a client told to come back does
    assert [status() for _ in range(10)] == [200] * 10


# What the worker sends (jobs/worker/statements.py): the claim (its write; its read before it
# changes nothing), and the end of a job, each final by itself on the worker loop's connections
# (autocommit) unless its owner has a webhook endpoint.
CLAIM, END = b"UPDATE jobs_job SET status = $1, started_at = $2", b"WITH ended AS"


@pytest.fixture(scope="module")
def lost_answers(django_db_setup, django_db_blocker, tmp_path_factory):
    from django.db import connection

    db = connection.settings_dict
    proxy = CuttableProxy(int(db["PORT"] or 5432))
    with running_spool(
        django_db_blocker,
        tmp_path_factory.mktemp("lost-answer-logs"),
        DATABASE_URL=f"postgres://{db['USER']}@127.0.0.1:{proxy.port}/{db['NAME']}",
        # The sweeper runs a job whose worker is gone again once its heartbeat has been missing
        # this long: here the worker must recover by itself, the sweeper never within the bound.
        SPOOL_HEARTBEAT_TTL_SECONDS="600",
        # A connection is waited for this long while Postgres is away, then the worker retries.
        SPOOL_DB_POOL_TIMEOUT_SECONDS="3",
    ) as running:
        try:
            yield running, proxy
        finally:
            proxy.restore()


def read_to_the_end(client: Frontend, job_id: str) -> list[dict]:
    """Poll with the cursor until a finish_reason (60 s at most); a 503 (a request that met the
    outage's dropped connections) is polled again."""
    messages, cursor = [], 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = client.http.post("/engine/pixelJobStreaming", data={"jobId": job_id, "cursor": cursor})
        if response.status_code == 200:
            messages += response.json()["message"]
            cursor = response.json()["cursor"]
            if any("finish_reason" in m["data"] for m in messages):
                break
        else:
            assert response.status_code == 503, response.text
        time.sleep(0.2)
    return messages


def test_a_claim_whose_answer_was_lost_still_runs_its_job(lost_answers, pg):
    """Postgres claimed the job for the worker, and the answer never came back: the worker's
    retry finds the job claimed, by itself, and runs it (not "taken by another delivery": that
    left the job running with no worker until the sweeper gave it back)."""
    run_through_a_lost_answer(lost_answers, (CLAIM,), "running", tokens=50, bound=30)


def test_a_final_commit_whose_answer_was_lost_still_ends_the_stream(lost_answers, pg):
    """Postgres committed the job's end, and the answer never came back: the worker's retry
    finds the job ended, by itself, and ends its stream (not "ended by the sweeper or a cancel":
    that left readers without the last chunks, the stream open while Postgres had the result)."""
    run_through_a_lost_answer(lost_answers, (END,), "succeeded", tokens=100, bound=60)


def test_a_stored_jobs_end_whose_answer_was_lost_keeps_one_stored_row(lost_answers, pg):
    """A stored job's end is the same one statement on the loop, its stored completion in it: the
    retry finds the job ended by itself and writes nothing again."""
    from jobs.models import StoredCompletion

    job_id = run_through_a_lost_answer(lost_answers, (END,), "succeeded", tokens=100, bound=60, store=True)
    [stored] = StoredCompletion.objects.filter(job_id=job_id)
    assert stored.status == "succeeded" and stored.response["choices"][0]["message"]["content"]


def test_a_claim_in_a_postgres_outage_waits_for_postgres_and_runs_its_job(lost_answers, pg):
    """A worker that takes a job's message while Postgres is away retries its claim (on the
    loop's own connections) until Postgres is back, then runs the job."""
    from jobs.models import Job

    spool, proxy = lost_answers
    client = Frontend(spool, spool.alice)
    log = spool.processes.logs / "worker.log"
    spool.processes.stop_worker()
    job_id = submit_after_an_outage(
        client, spool.engine_id, "claimed in the dark", {"max_completion_tokens": 30, **NO_EOT}
    )
    retries = log.read_text(errors="replace").count("Postgres unavailable")
    proxy.cut()
    try:
        spool.processes.start_worker()
        deadline = time.monotonic() + 60
        while log.read_text(errors="replace").count("Postgres unavailable") == retries:
            assert time.monotonic() < deadline, "the worker never tried to claim the job"
            time.sleep(0.2)
        assert Job.objects.get(pk=job_id).status == Job.Status.QUEUED
    finally:
        proxy.restore()
    messages = read_to_the_end(client, job_id)
    assert messages and messages[-1]["data"] == {"finish_reason": "length"}
    assert Job.objects.get(pk=job_id).status == Job.Status.SUCCEEDED


def submit_after_an_outage(client: Frontend, engine_id: str, command: str, params: dict) -> str:
    """Submit as a client does after an outage. The last test's cut broke the web's idle pooled
    connections too: the first request to meet one answers 503 and has the web test the others
    (Postgres unreachable, docs/RELIABILITY.md). A 503 is sent again, for 10 s at most."""
    deadline = time.monotonic() + 10
    while True:
        expression = llm_pixel(engine_id, command, params)
        body = client.post("/engine/runPixelAsync", expression=expression, insightId="new")
        if body.get("jobId") or body.get("status") != "Unavailable" or time.monotonic() > deadline:
            assert body.get("jobId"), body
            return body["jobId"]
        time.sleep(0.2)


def run_through_a_lost_answer(
    lost_answers, statements: tuple[str, ...], left: str, *, tokens: int, bound: float, store: bool = False
) -> str:
    """A job whose worker's answer to `statements` is lost on the way back, the statement done
    (the job `left` in that status): it still streams to its end, once, with Postgres holding the
    same result. Its id."""
    from jobs.models import Job

    spool, proxy = lost_answers
    client = Frontend(spool, spool.alice)
    proxy.lose_answer_to(*statements)
    try:
        params = {"max_completion_tokens": tokens, **NO_EOT, **({"store": True} if store else {})}
        job_id = submit_after_an_outage(client, spool.engine_id, "answered unheard", params)
        assert proxy.answer_lost.wait(bound), f"the worker sent {statements}"
        # Postgres did it (read here, not through the proxy): not a statement that never ran,
        # such as one whose preparing's answer was lost.
        assert Job.objects.get(pk=job_id).status == left
    finally:
        proxy.restore()

    messages = read_to_the_end(client, job_id)
    assert messages and messages[-1]["data"] == {"finish_reason": "length"}
    job = Job.objects.get(pk=job_id)
    assert job.status == Job.Status.SUCCEEDED
    assert text_of(messages) == job.result["choices"][0]["content"]
    assert job.usage["output_tokens"] == tokens
    return job_id
