"""Soak: many concurrent jobs, each read at once by a stateful poller, a cursor poller and an SSE
reader. Every reader gets every chunk exactly once and in order; every job is stored.

SPOOL_SOAK_JOBS (default 200) and SPOOL_SOAK_TOKENS (default 30) size it; the longer soak named
in docs/RELIABILITY.md runs this same test with bigger numbers."""

from __future__ import annotations

import asyncio
import json
import os
import time

import httpx
import pytest

from jobs.faces.semoss import render
from tests.brokers import BROKERS, figures_name, spool_on
from tests.e2e.helpers import NO_EOT, llm_pixel

pytestmark = pytest.mark.e2e

JOBS = int(os.environ.get("SPOOL_SOAK_JOBS", "200"))
TOKENS = int(os.environ.get("SPOOL_SOAK_TOKENS", "30"))


@pytest.fixture(scope="module", params=[*BROKERS, "cluster"])
def soak_spool(request, django_db_setup, django_db_blocker, tmp_path_factory):
    """On each broker (tests/brokers.py), and with the chunk log on a Redis Cluster."""
    cluster = request.param == "cluster"
    with spool_on(
        "redis" if cluster else request.param,
        django_db_blocker,
        tmp_path_factory.mktemp(f"soak-{request.param}-logs"),
        concurrency=JOBS,
        SPOOL_REQUESTS_PER_MINUTE="0",
        SPOOL_JOBS_PER_MINUTE="0",
        SPOOL_MAX_ACTIVE_JOBS="0",
        **(request.getfixturevalue("redis_cluster").env() if cluster else {}),
    ) as running:
        yield running


def finished(messages: list[dict]) -> bool:
    return any("finish_reason" in m["data"] for m in messages)


async def poll(http: httpx.AsyncClient, job_id: str, *, with_cursor: bool) -> list[dict]:
    got: list[dict] = []
    cursor = 0
    while not finished(got):
        form = {"jobId": job_id, **({"cursor": cursor} if with_cursor else {})}
        response = await http.post("/Monolith/api/engine/pixelJobStreaming", data=form)
        body = response.json()
        assert response.status_code == 200, body
        got += body["message"]
        cursor = body["cursor"]
    return got


async def sse(http: httpx.AsyncClient, job_id: str, key: str) -> list[dict]:
    chunks: list[dict] = []
    headers = {"Authorization": f"Bearer {key}"}
    async with http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as response:
        event = None
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
                if event == "done":
                    break
            elif line.startswith("data: ") and event in ("chunk", "error"):
                chunks.append(json.loads(line[6:]))
    return chunks


async def soak(spool) -> tuple[list[str], list[tuple[list, list, list]], float]:
    limits = httpx.Limits(max_connections=4 * JOBS, max_keepalive_connections=4 * JOBS)
    auth = (spool.alice.access_key, spool.alice.secret_key)
    async with httpx.AsyncClient(base_url=spool.base_url, auth=auth, limits=limits, timeout=120) as http:
        params = {"max_completion_tokens": TOKENS, "store": True, "metadata": {"soak": "yes"}, **NO_EOT}

        async def submit(i: int) -> str:
            pixel = llm_pixel(spool.engine_id, f"soak {i}", params)
            response = await http.post("/Monolith/api/engine/runPixelAsync", data={"expression": pixel})
            body = response.json()
            assert response.status_code == 200, body
            return body["jobId"]

        started = time.monotonic()
        ids = await asyncio.gather(*[submit(i) for i in range(JOBS)])
        readers = [
            asyncio.gather(
                poll(http, job_id, with_cursor=False),
                poll(http, job_id, with_cursor=True),
                sse(http, job_id, spool.alice.secret_key),
            )
            for job_id in ids
        ]
        results = await asyncio.gather(*readers)
        return ids, results, time.monotonic() - started


def test_every_reader_of_every_job_gets_every_chunk_once_in_order(soak_spool, pg):
    from jobs.models import Job, StoredCompletion

    ids, results, elapsed = asyncio.run(soak(soak_spool))
    jobs = {str(job.pk): job for job in Job.objects.filter(pk__in=ids)}
    delivered = 0
    for job_id, (stateful, cursored, events) in zip(ids, results, strict=True):
        job = jobs[job_id]
        assert job.status == Job.Status.SUCCEEDED
        expected = render.messages(job.chunks)
        assert stateful == expected
        assert cursored == expected
        assert [e["seq"] for e in events] == list(range(len(job.chunks)))
        assert [{k: v for k, v in e.items() if k != "seq"} for e in events] == job.chunks
        delivered += len(stateful) + len(cursored) + len(events)
    assert StoredCompletion.objects.filter(job_id__in=ids).count() == JOBS

    figures = {"jobs": JOBS, "tokens_per_job": TOKENS, "readers": 3 * JOBS, "seconds": round(elapsed, 2),
               "messages_delivered": delivered, "lost": 0, "duplicated": 0}  # fmt: skip
    name = figures_name(soak_spool, "soak")
    (soak_spool.artifacts / f"{name}.json").write_text(json.dumps(figures, indent=2))
