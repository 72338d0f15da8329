"""Tenancy across every face: another user's job, room and stored completion do not exist for
bob (UnknownJob or 404, never a 403 that confirms them), and nothing bob does touches them."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.e2e.helpers import Frontend, llm_pixel, messages_of

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def alices(spool):
    """A finished SEMOSS job in a room, and a stored OpenAI completion, both alice's."""
    alice = Frontend(spool, spool.alice)
    out = alice.post(
        "/engine/runPixel",
        expression=llm_pixel(spool.engine_id, "mine", {"max_completion_tokens": 5}),
        insightId="new",
    )["pixelReturn"][0]["output"]
    stored = httpx.post(
        f"{spool.base_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {spool.alice.secret_key}"},
        json={"model": "spool-offline", "messages": [{"role": "user", "content": "x"}], "store": True,
              "max_completion_tokens": 3, "metadata": {"owner": "alice"}},
        timeout=30,
    ).json()  # fmt: skip
    return {"job": out["messageId"], "room": out["roomId"], "completion": stored["id"]}


SEMOSS_JOB_ENDPOINTS = ["pixelJobStreaming", "partial", "result", "status", "terminate"]


@pytest.mark.parametrize("endpoint", SEMOSS_JOB_ENDPOINTS)
def test_semoss_job_endpoints_answer_unknown_job_for_another_users_job(spool, alices, endpoint):
    response = Frontend(spool, spool.bob).http.post(f"/engine/{endpoint}", data={"jobId": alices["job"]})
    assert response.status_code == 200 and response.json()["status"] == "UnknownJob"


def test_another_users_room_is_unknown_to_history_and_to_new_messages(spool, alices):
    bob = Frontend(spool, spool.bob)
    history = bob.post("/engine/runPixel", expression=f'GetRoomMessages(roomId="{alices["room"]}");')
    unknown = bob.post("/engine/runPixel", expression=f'GetRoomMessages(roomId="{uuid.uuid4()}");')
    # As SEMOSS answers: an empty history, the same as for a room that does not exist.
    assert history["pixelReturn"][0]["output"] == unknown["pixelReturn"][0]["output"] == []
    assert history["pixelReturn"][0]["operationType"] == unknown["pixelReturn"][0]["operationType"]
    own = Frontend(spool, spool.alice).post(
        "/engine/runPixel", expression=f'GetRoomMessages(roomId="{alices["room"]}");'
    )
    assert len(own["pixelReturn"][0]["output"]) == 2
    pixel = llm_pixel(spool.engine_id, "let me in", {"max_completion_tokens": 2}, roomId=alices["room"])
    joined = bob.post("/engine/runPixelAsync", expression=pixel)
    assert joined["jobId"] is None and "Unknown room" in joined["errorMessage"]


V1_ENDPOINTS = [
    ("GET", "/v1/jobs/{job}"),
    ("GET", "/v1/jobs/{job}/chunks?after=-1"),
    ("GET", "/v1/jobs/{job}/events"),
    ("POST", "/v1/jobs/{job}/cancel"),
    ("GET", "/v1/chat/completions/{completion}"),
    ("POST", "/v1/chat/completions/{completion}"),
    ("DELETE", "/v1/chat/completions/{completion}"),
    ("GET", "/v1/chat/completions/{completion}/messages"),
    ("POST", "/v1/chat/completions/{completion}/cancel"),
]


@pytest.mark.parametrize(("method", "path"), V1_ENDPOINTS)
def test_v1_endpoints_answer_404_for_another_users_resources(spool, alices, method, path):
    url = spool.base_url + path.format(**alices)
    body = {"metadata": {"owner": "bob"}} if method == "POST" else None
    response = httpx.request(
        method, url, json=body, headers={"Authorization": f"Bearer {spool.bob.secret_key}"}, timeout=30
    )
    assert response.status_code == 404, response.text
    assert response.json()["error"]["message"]


def test_another_users_completions_are_not_listed(spool, alices):
    listed = httpx.get(
        f"{spool.base_url}/v1/chat/completions",
        params={"metadata[owner]": "alice"},
        headers={"Authorization": f"Bearer {spool.bob.secret_key}"},
    ).json()
    assert listed["data"] == []


def test_nothing_bob_did_touched_alices_things(spool, alices):
    """Runs after the attempts above (pytest keeps file order)."""
    alice = Frontend(spool, spool.alice)
    assert alice.post("/engine/status", jobId=alices["job"])["status"] == "ProgressComplete"
    assert messages_of([alice.post("/engine/pixelJobStreaming", jobId=alices["job"], cursor=0)])
    stored = httpx.get(
        f"{spool.base_url}/v1/chat/completions/{alices['completion']}",
        headers={"Authorization": f"Bearer {spool.alice.secret_key}"},
    ).json()
    assert stored["metadata"] == {"owner": "alice"}
    history = alice.post("/engine/runPixel", expression=f'GetRoomMessages(roomId="{alices["room"]}");')
    assert [m["ROLE"] for m in history["pixelReturn"][0]["output"]] == ["user", "assistant"]


def test_the_admin_wants_staff(spool, pg):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(username="bob")
    user.set_password("bob-password")
    user.save()
    with httpx.Client(base_url=spool.base_url, follow_redirects=False) as browser:
        login = browser.get("/admin/login/")
        token = browser.cookies["csrftoken"]
        browser.post(
            "/admin/login/",
            data={"username": "bob", "password": "bob-password", "csrfmiddlewaretoken": token},
            headers={"Referer": f"{spool.base_url}/admin/login/"},
        )
        assert login.status_code == 200
        response = browser.get("/admin/jobs/job/")
        assert response.status_code == 302 and "/admin/login/" in response.headers["location"]
