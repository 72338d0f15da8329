"""A page of a job's chunks is rendered once for every reader that asks for the same chunks
(pixelJobStreaming); a reader at another cursor, or of another job, gets its own."""

from __future__ import annotations

import base64

import orjson
import pytest

from jobs import chunklog, services
from jobs.faces.semoss import render
from jobs.selectors import ChunkPage

pytestmark = pytest.mark.django_db

CHUNKS = [
    {"type": "content", "data": {"content": "Hello"}},
    {"type": "content", "data": {"content": ", world"}},
    {"type": "tool", "data": {"index": 0, "id": "call_1", "name": "lookup", "arguments": "{}"}},
]


def test_readers_of_the_same_chunks_share_one_render():
    first = render.page_messages("job-a", ChunkPage(0, [dict(c) for c in CHUNKS], False))
    second = render.page_messages("job-a", ChunkPage(0, [dict(c) for c in CHUNKS], False))
    assert second is first
    assert orjson.loads(orjson.dumps(first)) == render.messages(CHUNKS)


def test_a_reader_at_another_cursor_or_of_another_job_gets_its_own_render():
    shared = render.page_messages("job-b", ChunkPage(0, CHUNKS, False))
    later = render.page_messages("job-b", ChunkPage(1, CHUNKS[1:], False))
    other = render.page_messages("job-c", ChunkPage(0, CHUNKS[:1], False))
    assert later is not shared and orjson.loads(orjson.dumps(later)) == render.messages(CHUNKS[1:])
    assert orjson.loads(orjson.dumps(other)) == render.messages(CHUNKS[:1])


def test_pollers_of_one_job_get_identical_pages_and_one_at_another_cursor_its_own(client, redis_clean):
    user = services.user_ensure(username="pager")
    key, secret = services.key_create(owner=user)
    basic = "Basic " + base64.b64encode(f"{key.access_key}:{secret}".encode()).decode()
    engine_id = services.engine_ensure_offline().pk
    started = client.post(
        "/Monolith/api/engine/runPixelAsync",
        {"expression": f'LLM(engine="{engine_id}", command="<encode>hi</encode>");', "insightId": "new"},
        headers={"Authorization": basic},
    )
    job_id = started.json()["jobId"]
    chunklog.append(job_id, CHUNKS)

    def poll(cursor: int) -> dict:
        answer = client.post(
            "/Monolith/api/engine/pixelJobStreaming",
            {"jobId": job_id, "cursor": cursor},
            headers={"Authorization": basic},
        )
        assert answer.status_code == 200 and answer["Content-Type"] == "application/json"
        return answer.json()

    one, two, later = poll(0), poll(0), poll(2)
    assert one == two
    assert one["message"] == render.messages(CHUNKS) and one["cursor"] == 3
    assert later["message"] == render.messages(CHUNKS[2:]) and later["cursor"] == 3
    assert one["status"] == later["status"] == "Streaming"
