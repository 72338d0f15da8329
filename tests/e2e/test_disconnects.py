"""A client that drops an SSE stream does not cancel the job: it finishes, is stored, and can
be read again in full."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.helpers import make_engine

pytestmark = pytest.mark.e2e


def wait_for_end(spool, job_id: str) -> dict:
    response = httpx.get(
        f"{spool.base_url}/v1/jobs/{job_id}",
        params={"wait": 30},
        headers={"Authorization": f"Bearer {spool.alice.secret_key}"},
        timeout=40,
    )
    return response.json()


def test_dropping_an_openai_stream_leaves_the_job_running_to_its_end(spool, pg):
    make_engine("paced-for-disconnect", tokens_per_second=40)
    body = {
        "model": "paced-for-disconnect",
        "messages": [{"role": "user", "content": "keep going"}],
        "stream": True,
        "store": True,
        "max_completion_tokens": 40,
        "logit_bias": {"0": -100},
    }
    headers = {"Authorization": f"Bearer {spool.alice.secret_key}"}
    with httpx.stream(
        "POST", f"{spool.base_url}/v1/chat/completions", json=body, headers=headers
    ) as response:
        job_id = response.headers["X-Spool-Job-Id"]
        seen = []
        for line in response.iter_lines():
            if line.startswith("data:"):
                seen.append(line)
            if len(seen) == 5:
                break
    assert len(seen) == 5  # and the connection is closed here, mid-stream

    job = wait_for_end(spool, job_id)
    assert job["status"] == "succeeded"
    completion_id = f"chatcmpl-{job_id.replace('-', '')}"
    stored = httpx.get(f"{spool.base_url}/v1/chat/completions/{completion_id}", headers=headers).json()
    assert stored["usage"]["completion_tokens"] == 40
    replay = httpx.get(f"{spool.base_url}/v1/jobs/{job_id}/events", headers=headers, timeout=30).text
    assert replay.count('"type":"content"') == 40  # every content chunk, none lost to the drop
    assert "event: done" in replay


def test_dropping_a_native_event_stream_does_not_cancel_the_job(spool, pg):
    make_engine("paced-for-disconnect", tokens_per_second=40)
    headers = {"Authorization": f"Bearer {spool.alice.secret_key}"}
    created = httpx.post(
        f"{spool.base_url}/v1/jobs",
        json={"engine": "paced-for-disconnect", "command": "on",
              "parameters": {"max_completion_tokens": 30, "logit_bias": {"0": -100}}},
        headers=headers,
    ).json()  # fmt: skip
    with httpx.stream("GET", f"{spool.base_url}/v1/jobs/{created['id']}/events", headers=headers) as response:
        for line in response.iter_lines():
            if line.startswith("id: 3"):
                break
    assert wait_for_end(spool, created["id"])["status"] == "succeeded"
