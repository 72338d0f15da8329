"""Key lifecycle against the running server, with the openai SDK and raw HTTP as clients send it:
a revoked key is refused within the key cache time and an expired one at once, in each face's
shape; a key limited to engines is refused (403) for another engine and sees only its own in
/v1/models; a key limited to faces is refused (403) on the others; a SEMOSS login session
carries its key's limits and ends with it; a key records its last use."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import httpx
import openai
import pytest
from django.utils import timezone

from tests.e2e.helpers import Frontend, llm_pixel, make_engine
from tests.servers import Spool, User

pytestmark = pytest.mark.e2e

WORDS = [{"role": "user", "content": "Speak."}]


def key_for(username: str, **limits) -> User:
    from jobs import services

    key, secret = services.key_create(
        owner=services.user_ensure(username=username), name="lifecycle", **limits
    )
    return User(username, key.access_key, secret)


def oai(spool: Spool, user: User) -> openai.OpenAI:
    return openai.OpenAI(base_url=spool.base_url + "/v1", api_key=user.secret_key, max_retries=0)


def native(spool: Spool, user: User) -> httpx.Client:
    return httpx.Client(
        base_url=spool.base_url + "/v1", headers={"Authorization": f"Bearer {user.secret_key}"}, timeout=30
    )


def cache_time() -> float:
    from django.conf import settings

    return settings.SPOOL.web.key_cache_seconds


def refusals(spool: Spool, user: User) -> dict[str, httpx.Response | openai.APIStatusError]:
    """One call on each face with the key: the openai SDK's error, and the raw answers."""
    with pytest.raises(openai.APIStatusError) as refused:
        oai(spool, user).models.list()
    return {
        "openai": refused.value,
        "native": native(spool, user).get(f"/jobs/{uuid.uuid4()}"),
        "semoss": Frontend(spool, user).http.post("/engine/status", data={"jobId": str(uuid.uuid4())}),
    }


def assert_refused(answers: dict, why: str) -> None:
    sdk = answers["openai"]
    assert isinstance(sdk, openai.AuthenticationError) and sdk.status_code == 401
    assert sdk.code == "invalid_api_key" and why in sdk.message
    assert sdk.response.headers["x-should-retry"] == "false"
    body = answers["native"].json()["error"]
    assert (
        answers["native"].status_code == 401 and body["code"] == "invalid_api_key" and why in body["message"]
    )
    assert answers["native"].headers["WWW-Authenticate"] == "Bearer"
    assert answers["semoss"].status_code == 401 and why in answers["semoss"].json()["errorMessage"]


def test_a_revoked_key_is_refused_within_the_key_cache_time_on_every_face(spool, pg):
    from django.core.management import call_command

    user = key_for("revoked-soon")
    assert [m.id for m in oai(spool, user).models.list()]  # in use, so cached by the web
    assert native(spool, user).get(f"/jobs/{uuid.uuid4()}").status_code == 404
    call_command("spool_key", "revoke", user.access_key, stdout=open("/dev/null", "w"))  # noqa: SIM115
    time.sleep(cache_time() + 0.2)
    assert_refused(refusals(spool, user), "was revoked")


def test_an_expired_key_is_refused_from_its_expiry_on_every_face(spool, pg):
    user = key_for("expiring", expires_at=timezone.now() + timedelta(seconds=2))
    assert native(spool, user).get(f"/jobs/{uuid.uuid4()}").status_code == 404
    time.sleep(2.1)  # the cached grant carries the expiry: no cache time to wait out
    assert_refused(refusals(spool, user), "expired at")


def test_a_wrong_key_is_still_just_incorrect(spool, pg):
    with pytest.raises(openai.AuthenticationError) as refused:
        oai(spool, User("nobody", "spool-ak-none", "spool-sk-not-a-key")).models.list()
    assert "Incorrect API key provided" in refused.value.message


@pytest.fixture(scope="module")
def other_engine(spool, django_db_blocker) -> str:
    with django_db_blocker.unblock():
        return make_engine("not-for-limited-keys", tokens_per_second=0)


@pytest.fixture(scope="module")
def limited(spool, other_engine, django_db_blocker) -> User:
    with django_db_blocker.unblock():
        return key_for("limited", engines=[spool.engine_id])


def test_a_key_limited_to_engines_lists_only_those(spool, limited, other_engine):
    assert [m.id for m in oai(spool, limited).models.list()] == ["spool-offline"]
    assert "not-for-limited-keys" in [m.id for m in oai(spool, spool.alice).models.list()]
    with pytest.raises(openai.NotFoundError):
        oai(spool, limited).models.retrieve("not-for-limited-keys")
    assert oai(spool, limited).models.retrieve("spool-offline").id == "spool-offline"


def test_a_key_limited_to_engines_is_refused_another_on_the_openai_face(spool, limited):
    client = oai(spool, limited)
    for create in (
        lambda: client.chat.completions.create(model="not-for-limited-keys", messages=WORDS),
        lambda: client.chat.completions.create(model="not-for-limited-keys", messages=WORDS, stream=True),
        lambda: client.responses.create(model="not-for-limited-keys", input="Speak."),
    ):
        with pytest.raises(openai.PermissionDeniedError) as refused:
            create()
        assert refused.value.status_code == 403 and refused.value.code == "engine_not_allowed"
        assert "not-for-limited-keys" in refused.value.message
    done = client.chat.completions.create(model="spool-offline", messages=WORDS, max_completion_tokens=3)
    assert done.choices[0].finish_reason in {"stop", "length"}


def test_a_key_limited_to_engines_is_refused_another_on_the_native_face(spool, limited, other_engine):
    answer = native(spool, limited).post("/jobs", json={"engine": other_engine, "command": "Speak."})
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "engine_not_allowed"
    ok = native(spool, limited).post("/jobs", json={"engine": "spool-offline", "command": "Speak."})
    assert ok.status_code == 202


def test_a_key_limited_to_engines_is_refused_another_on_the_semoss_face(spool, limited, other_engine, pg):
    from jobs.models import Job, Room

    semoss = Frontend(spool, limited)
    rooms = Room.objects.filter(owner__username="limited").count()
    for endpoint in ("runPixelAsync", "runPixel"):
        answer = semoss.http.post(
            f"/engine/{endpoint}", data={"expression": llm_pixel(other_engine, "hi"), "insightId": "new"}
        )
        assert answer.status_code == 403
        assert answer.json()["errorMessage"] == "This API key may not use engine 'not-for-limited-keys'."
    model_api = semoss.http.post(
        "/engine/runPixel", data={"expression": f'GetModelAPI(model="{other_engine}");'}
    )
    assert model_api.status_code == 403
    # Refused before anything was written: no job, no room.
    assert not Job.objects.filter(owner__username="limited", engine_id=other_engine).exists()
    assert Room.objects.filter(owner__username="limited").count() == rooms
    assert semoss.submit(spool.engine_id, "hi", {"max_completion_tokens": 2})


def test_a_key_limited_to_engines_is_refused_embeddings_of_another_on_every_face(
    spool, limited, other_engine
):
    with pytest.raises(openai.PermissionDeniedError) as refused:
        oai(spool, limited).embeddings.create(model="not-for-limited-keys", input="Speak.")
    assert refused.value.code == "engine_not_allowed"
    answer = native(spool, limited).post("/jobs/embeddings", json={"engine": other_engine, "input": "Speak."})
    assert (answer.status_code, answer.json()["error"]["code"]) == (403, "engine_not_allowed")
    pixel = Frontend(spool, limited).http.post(
        "/engine/runPixel", data={"expression": f"Embeddings(engine=\"{other_engine}\", values=['Speak.']);"}
    )
    assert pixel.status_code == 403
    assert pixel.json()["errorMessage"] == "This API key may not use engine 'not-for-limited-keys'."
    # Its own engine still embeds.
    assert len(oai(spool, limited).embeddings.create(model="spool-offline", input="Speak.").data) == 1


def test_a_key_limited_to_faces_is_refused_on_the_others(spool, pg):
    user = key_for("openai-only", faces=["openai"])
    assert oai(spool, user).models.list()
    answer = native(spool, user).get(f"/jobs/{uuid.uuid4()}")
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "face_not_allowed"
    for path in ("/engine/status", "/engine/runPixelAsync"):
        semoss = Frontend(spool, user).http.post(path, data={"jobId": "x", "expression": "META | true"})
        assert semoss.status_code == 403
        assert semoss.json()["errorMessage"] == "This API key may not use the semoss API."
    login = Frontend(spool, user).http.get("/config")
    assert login.status_code == 403 and "sessionid" not in login.cookies


def test_a_semoss_login_session_ends_with_its_key_and_keeps_its_limits(spool, other_engine, pg):
    from jobs import services
    from jobs.models import ApiKey

    user = key_for("session-keyed", engines=[spool.engine_id])
    session = httpx.Client(base_url=spool.semoss, timeout=30)
    assert session.get("/config", auth=(user.access_key, user.secret_key)).json()["loginDetails"]
    assert session.cookies.get("sessionid")
    refused = session.post("/engine/runPixelAsync", data={"expression": llm_pixel(other_engine, "hi")})
    assert refused.status_code == 403  # the session is no way around the key's limits
    assert session.post("/engine/status", data={"jobId": "x"}).json()["status"] == "UnknownJob"
    services.key_revoke(key=ApiKey.objects.get(access_key=user.access_key))
    time.sleep(cache_time() + 0.2)
    gone = session.post("/engine/status", data={"jobId": "x"})
    assert gone.status_code == 401 and "revoked" in gone.json()["errorMessage"]


def test_a_key_records_its_last_use(spool, pg):
    from jobs.models import ApiKey

    user = key_for("last-use")
    assert ApiKey.objects.get(access_key=user.access_key).last_used_at is None
    before = timezone.now()
    oai(spool, user).models.list()
    used = ApiKey.objects.get(access_key=user.access_key).last_used_at
    assert used is not None and used >= before - timedelta(seconds=1)
