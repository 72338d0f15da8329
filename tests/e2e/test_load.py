"""Load: one web process and one worker hold 500 clients at once, half polling pixelJobStreaming
as the SEMOSS frontend does, half reading /v1/chat/completions streams with the official SDK.
Every request is answered 200 and every job's streamed text equals what Postgres stored.
SPOOL_LOAD_CLIENTS, SPOOL_LOAD_TOKENS and SPOOL_LOAD_TPS (0: full speed) size it; the figures in
docs/RELIABILITY.md come from this test.

And the other side of the same mechanism: when a connection pool stays busy past its timeout,
each face answers 503 "overloaded" with Retry-After in its own shape, not "cannot reach Redis"."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
import redis

from tests.e2e.helpers import NO_EOT, llm_pixel
from tests.servers import running_spool

pytestmark = pytest.mark.e2e

CLIENTS = int(os.environ.get("SPOOL_LOAD_CLIENTS", "500"))
TOKENS = int(os.environ.get("SPOOL_LOAD_TOKENS", "40"))


@pytest.fixture(scope="module")
def loaded_spool(django_db_setup, django_db_blocker, tmp_path_factory):
    from jobs import services
    from jobs.models import Engine

    with django_db_blocker.unblock():
        # Its own engine row: the shared offline engine is paced for the other e2e tests.
        pace = {"tokens_per_second": float(os.environ.get("SPOOL_LOAD_TPS", "0"))}
        services.engine_upsert(name="offline-full-speed", kind=Engine.Kind.OFFLINE, config=pace)
    with running_spool(
        django_db_blocker,
        tmp_path_factory.mktemp("load-logs"),
        SPOOL_REQUESTS_PER_MINUTE="0",
        SPOOL_JOBS_PER_MINUTE="0",
        SPOOL_MAX_ACTIVE_JOBS="0",
    ) as running:
        yield running


class Tally:
    def __init__(self) -> None:
        self.requests = 0
        self.refused: list[str] = []

    def saw(self, status: int, body: str) -> None:
        self.requests += 1
        if status != 200:
            self.refused.append(f"{status} {body[:200]}")


async def frontend(http: httpx.AsyncClient, tally: Tally, i: int) -> tuple[str, str]:
    """runPixelAsync, then pixelJobStreaming until finish_reason: (job id, text streamed)."""
    pixel = llm_pixel("offline-full-speed", f"load {i}", {"max_completion_tokens": TOKENS, **NO_EOT})
    response = await http.post("/Monolith/api/engine/runPixelAsync", data={"expression": pixel})
    tally.saw(response.status_code, response.text)
    job_id = response.json()["jobId"]
    text, done = "", False
    while not done:
        response = await http.post("/Monolith/api/engine/pixelJobStreaming", data={"jobId": job_id})
        tally.saw(response.status_code, response.text)
        for message in response.json()["message"]:
            text += message["data"].get("content", "")
            done = done or "finish_reason" in message["data"]
    return job_id, text


async def sdk_stream(client: openai.AsyncOpenAI, tally: Tally, i: int) -> tuple[str, str]:
    """A streamed chat completion read to its end: (job id, text streamed); a refusal is
    tallied (so the test names every refusal and its reason, not only the first)."""
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model="offline-full-speed",
            messages=[{"role": "user", "content": f"load {i}"}],
            max_completion_tokens=TOKENS,
            logit_bias=NO_EOT["logit_bias"],
            stream=True,
        )
    except openai.APIStatusError as refused:
        tally.saw(refused.status_code, refused.message)
        return "", ""
    tally.saw(raw.http_response.status_code, "")
    text = ""
    async for chunk in raw.parse():
        for choice in chunk.choices:
            text += choice.delta.content or ""
    return raw.http_response.headers["X-Spool-Job-Id"], text


async def load(spool) -> tuple[Tally, list[tuple[str, str]], float]:
    tally = Tally()
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    auth = (spool.alice.access_key, spool.alice.secret_key)
    async with (
        httpx.AsyncClient(base_url=spool.base_url, auth=auth, limits=limits, timeout=120) as http,
        httpx.AsyncClient(limits=limits, timeout=120) as sdk_http,
    ):
        client = openai.AsyncOpenAI(
            base_url=f"{spool.base_url}/v1", api_key=spool.alice.secret_key, http_client=sdk_http,
            max_retries=0,  # a refused request must show, not be retried away
        )  # fmt: skip
        started = time.monotonic()
        half = CLIENTS // 2
        outcomes = await asyncio.gather(
            *[frontend(http, tally, i) for i in range(half)],
            *[sdk_stream(client, tally, i) for i in range(half, CLIENTS)],
        )
        return tally, outcomes, time.monotonic() - started


def test_500_clients_at_once_are_all_answered_and_get_their_whole_text(loaded_spool, pg):
    from jobs.models import Job

    tally, outcomes, elapsed = asyncio.run(load(loaded_spool))

    assert tally.refused == []
    jobs = {str(job.pk): job for job in Job.objects.filter(pk__in=[job_id for job_id, _ in outcomes])}
    assert len(jobs) == CLIENTS
    for job_id, text in outcomes:
        job = jobs[job_id]
        assert job.status == Job.Status.SUCCEEDED
        assert text == job.result["choices"][0]["content"]
        assert job.usage["output_tokens"] == TOKENS
    figures = {"clients": CLIENTS, "requests": tally.requests, "refused": 0, "seconds": round(elapsed, 2)}
    (loaded_spool.artifacts / "load.json").write_text(json.dumps(figures, indent=2))


# ---- a pool busy past its timeout -----------------------------------------------------------


@pytest.fixture(scope="module")
def starved_spool(django_db_setup, django_db_blocker, tmp_path_factory):
    """One Redis connection per process, given up on after 0.2 s: while a request's command
    waits with that one connection, every other request (each counts against its caller's rate
    limit in Redis first) finds the pool busy."""
    with running_spool(
        django_db_blocker,
        tmp_path_factory.mktemp("starved-logs"),
        SPOOL_REDIS_MAX_CONNECTIONS="1",
        SPOOL_REDIS_POOL_TIMEOUT_SECONDS="0.2",
    ) as running:
        yield running


@contextlib.contextmanager
def _the_only_connection_held(spool) -> Iterator[None]:
    """Redis holds every write for a while (CLIENT PAUSE WRITE): a first request's rate-limit
    count waits with the process's only connection, in a thread of its own. (A long-poll's
    wake-up subscription used to hold it; it has a connection of its own now.)"""
    from django.conf import settings

    redis_server = redis.Redis.from_url(settings.SPOOL.redis.url)
    redis_server.client_pause(PAUSE_MS, all=False)
    auth = (spool.alice.access_key, spool.alice.secret_key)
    form = {"expression": llm_pixel(spool.engine_id, "held")}
    holder = threading.Thread(target=_post, args=(spool, "/Monolith/api/engine/runPixelAsync"),
                              kwargs={"data": form, "auth": auth})  # fmt: skip
    holder.start()
    try:
        time.sleep(0.5)  # its command is sent and waits
        yield
    finally:
        redis_server.client_unpause()
        holder.join(timeout=60)


def _post(spool, path: str, **kwargs) -> httpx.Response:
    return httpx.post(f"{spool.base_url}{path}", timeout=30, **kwargs)


# Longer than the test needs: it unpauses when done.
PAUSE_MS = 20_000


def test_a_busy_pool_is_an_overload_503_in_each_faces_shape(starved_spool):
    with _the_only_connection_held(starved_spool):
        _every_face_answers_overloaded(starved_spool)


def _every_face_answers_overloaded(starved_spool) -> None:
    alice = starved_spool.alice
    form = {"expression": llm_pixel(starved_spool.engine_id, "hello")}
    basic = (alice.access_key, alice.secret_key)
    for _ in range(100):  # until the holder's command waits; each try costs the 0.2 s pool timeout
        semoss = _post(starved_spool, "/Monolith/api/engine/runPixelAsync", data=form, auth=basic)
        if semoss.status_code != 200:
            break
    assert semoss.status_code == 503, semoss.text
    assert semoss.headers["Retry-After"] == "2"
    assert semoss.json()["status"] == "Unavailable"
    assert "overloaded" in semoss.json()["errorMessage"]

    bearer = {"Authorization": f"Bearer {alice.secret_key}"}
    engine = starved_spool.engine_id
    for path, body in [
        ("/v1/chat/completions", {"model": engine, "messages": [{"role": "user", "content": "x"}]}),
        ("/v1/jobs", {"engine": engine, "command": "hello"}),
    ]:
        response = _post(starved_spool, path, json=body, headers=bearer)
        assert response.status_code == 503, (path, response.text)
        assert response.headers["Retry-After"] == "2"
        error = response.json()["error"]
        assert error["code"] == "server_overloaded"
        assert error["type"] == "server_error"
        assert "overloaded" in error["message"] and "Redis" not in error["message"]
