"""Read tokens against the running server: minted by the job's owner, they read that job (native
events, chunks and status; SEMOSS pixelJobStreaming, partial, status and result) with no key,
and nothing else: no other job, no other user's data, no write, no other endpoint; they expire,
and end with the key that made them."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.e2e.helpers import NO_EOT, text_of

pytestmark = pytest.mark.e2e


def keyed(spool, user) -> httpx.Client:
    return httpx.Client(
        base_url=spool.base_url, headers={"Authorization": f"Bearer {user.secret_key}"}, timeout=30
    )


def start(spool, user, tokens: int = 12) -> str:
    answer = keyed(spool, user).post(
        "/v1/jobs",
        json={"engine": "spool-offline", "command": "Tell me of the king.",
              "parameters": {"max_completion_tokens": tokens, **NO_EOT}},
    )  # fmt: skip
    assert answer.status_code == 202, answer.text
    return answer.json()["id"]


def mint(spool, user, job_id: str, **body) -> httpx.Response:
    return keyed(spool, user).post(f"/v1/jobs/{job_id}/read_tokens", json=body)


@pytest.fixture(scope="module")
def job(spool) -> tuple[str, str]:
    """(alice's job, a read token for it)."""
    job_id = start(spool, spool.alice)
    answer = mint(spool, spool.alice, job_id)
    assert answer.status_code == 201
    body = answer.json()
    assert body["object"] == "job.read_token" and body["job_id"] == job_id
    assert 295 <= body["expires_at"] - time.time() <= 300
    return job_id, body["token"]


def sse_events(text: str) -> list[dict]:
    events = []
    for frame in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in frame.splitlines() if not line.startswith(":"))
        if fields:
            events.append(fields)
    return events


def test_a_token_streams_its_job_and_resumes_after_a_given_event(spool, job):
    job_id, token = job
    plain = httpx.Client(base_url=spool.base_url, timeout=30)
    whole = sse_events(plain.get(f"/v1/jobs/{job_id}/events", params={"token": token}).text)
    chunks = [e for e in whole if e["event"] in {"chunk", "error"}]
    assert [int(e["id"]) for e in chunks] == list(range(len(chunks))) and whole[-1]["event"] == "done"
    rest = plain.get(
        f"/v1/jobs/{job_id}/events", params={"token": token}, headers={"Last-Event-ID": "4"}
    ).text
    assert [e["id"] for e in sse_events(rest) if "id" in e] == [e["id"] for e in chunks[5:]]


def test_a_token_polls_its_job_on_the_native_face(spool, job):
    job_id, token = job
    plain = httpx.Client(base_url=spool.base_url, timeout=30)
    page = plain.get(f"/v1/jobs/{job_id}/chunks", params={"token": token, "after": -1, "wait": 5}).json()
    assert page["job_id"] == job_id and page["chunks"][0]["seq"] == 0
    finished = plain.get(f"/v1/jobs/{job_id}", params={"token": token, "wait": 30}).json()
    assert finished["status"] == "succeeded" and finished["finish_reason"] == "length"


def test_a_token_polls_its_job_on_the_semoss_face(spool, job):
    job_id, token = job
    plain = httpx.Client(base_url=spool.semoss, params={"token": token}, timeout=30)
    polled = plain.post("/engine/pixelJobStreaming", data={"jobId": job_id, "cursor": 0}).json()
    finished = keyed(spool, spool.alice).get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
    assert text_of(polled["message"]).strip() and polled["status"] != "UnknownJob"
    assert plain.post("/engine/status", data={"jobId": job_id}).json()["status"] == "ProgressComplete"
    assert plain.post("/engine/partial", data={"jobId": job_id}).json()["message"]["total"]
    output = plain.post("/engine/result", data={"jobId": job_id}).json()["pixelReturn"][0]["output"]
    assert output["response"] == finished["result"]["choices"][0]["content"]


def test_a_token_reads_no_other_job_not_even_its_owners(spool, job):
    _, token = job
    others = {"alice's other": start(spool, spool.alice, 2), "bob's": start(spool, spool.bob, 2)}
    plain = httpx.Client(base_url=spool.base_url, timeout=30)
    for other in others.values():
        for path in (f"/v1/jobs/{other}", f"/v1/jobs/{other}/chunks", f"/v1/jobs/{other}/events"):
            answer = plain.get(path, params={"token": token})
            assert answer.status_code == 404 and answer.json()["error"]["code"] == "job_not_found"
        for endpoint in ("pixelJobStreaming", "partial", "status", "result"):
            answer = plain.post(
                f"/Monolith/api/engine/{endpoint}", params={"token": token}, data={"jobId": other}
            )
            assert answer.json()["status"] == "UnknownJob"


WRITES_AND_OTHER_READS = [
    ("POST", "/v1/jobs/{job}/cancel", None),
    ("POST", "/v1/jobs/{job}/read_tokens", {}),
    ("POST", "/v1/jobs", {"engine": "spool-offline", "command": "x"}),
    ("GET", "/v1/jobs/completions", None),
    ("GET", "/v1/models", None),
    (
        "POST",
        "/v1/chat/completions",
        {"model": "spool-offline", "messages": [{"role": "user", "content": "x"}]},
    ),
    ("GET", "/v1/chat/completions", None),
    ("GET", "/v1/webhook_endpoints", None),
    ("POST", "/v1/responses", {"model": "spool-offline", "input": "x"}),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITES_AND_OTHER_READS)
def test_a_token_does_nothing_but_read_its_job(spool, job, method, path, body):
    job_id, token = job
    answer = httpx.request(
        method, spool.base_url + path.format(job=job_id), params={"token": token}, json=body, timeout=30
    )
    assert answer.status_code == 401, answer.text


@pytest.mark.parametrize("endpoint", ["terminate", "runPixelAsync", "runPixel"])
def test_a_token_does_not_act_on_the_semoss_face(spool, job, endpoint):
    job_id, token = job
    answer = httpx.post(
        f"{spool.semoss}/engine/{endpoint}", params={"token": token},
        data={"jobId": job_id, "expression": "META | true"}, timeout=30,
    )  # fmt: skip
    assert answer.status_code == 401 and answer.json()["errorMessage"]


def test_a_forged_or_expired_token_is_refused_in_the_faces_shape(spool):
    job_id = start(spool, spool.alice, 2)
    token = mint(spool, spool.alice, job_id, expires_in=1).json()["token"]
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    time.sleep(1.1)
    for bad in (token, forged):
        native = httpx.get(f"{spool.base_url}/v1/jobs/{job_id}/events", params={"token": bad}, timeout=30)
        assert native.status_code == 401
        assert native.json()["error"]["code"] == "invalid_read_token"
        semoss = httpx.post(f"{spool.semoss}/engine/status", params={"token": bad}, data={"jobId": job_id})
        assert semoss.status_code == 401 and "read token" in semoss.json()["errorMessage"]


def test_a_revoked_keys_tokens_stop_within_the_key_cache_time(spool, pg):
    from django.conf import settings

    from jobs import services
    from jobs.models import ApiKey
    from tests.servers import User

    key, secret = services.key_create(owner=services.user_ensure(username="alice"), name="short")
    user = User("alice", key.access_key, secret)
    job_id = start(spool, user, 2)
    token = mint(spool, user, job_id).json()["token"]
    assert httpx.get(f"{spool.base_url}/v1/jobs/{job_id}", params={"token": token}).status_code == 200
    services.key_revoke(key=ApiKey.objects.get(pk=key.pk))
    time.sleep(settings.SPOOL.web.key_cache_seconds + 0.2)
    answer = httpx.get(f"{spool.base_url}/v1/jobs/{job_id}", params={"token": token})
    assert answer.status_code == 401 and "revoked" in answer.json()["error"]["message"]


def test_minting_is_the_owners_and_its_body_is_checked(spool, job):
    job_id, _ = job
    assert mint(spool, spool.bob, job_id).status_code == 404
    capped = mint(spool, spool.alice, job_id, expires_in=10**6).json()
    assert capped["expires_at"] - time.time() <= 3600
    for body, param in (({"expires_in": 0}, "expires_in"), ({"expires_in": "60"}, "expires_in"),
                        ({"scope": "all"}, "scope")):  # fmt: skip
        answer = mint(spool, spool.alice, job_id, **body)
        assert answer.status_code == 400 and answer.json()["error"]["param"] == param, answer.text
    not_json = keyed(spool, spool.alice).post(f"/v1/jobs/{job_id}/read_tokens", content=b"{")
    assert not_json.status_code == 400
    assert json.loads(not_json.text)["error"]["code"] == "invalid_json"
