"""Webhooks end to end: endpoints registered with the official `openai` SDK on a running Spool,
jobs run by its worker, deliveries received by a real HTTP server of the test's own and each
verified with the unmodified SDK's `webhooks.unwrap` and the endpoint's secret."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from harness.webhook_receiver import Received, Receiver, running_receiver
from tests.e2e.helpers import NO_EOT, Frontend, record_figures
from tests.servers import Spool, User, running_spool

JOB_EVENTS = ["job.succeeded", "job.failed", "job.cancelled"]


@pytest.fixture(scope="module")
def spool(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Spool]:
    """A Spool that may call loopback receivers (as a deployment may allow its own network), and
    retries after 0.2 s, doubling up to 1 s, so a retried delivery arrives within the test."""
    with running_spool(
        django_db_blocker,
        tmp_path_factory.mktemp("webhooks-logs"),
        SPOOL_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
        SPOOL_WEBHOOK_BACKOFF_SECONDS="0.2",
        SPOOL_WEBHOOK_BACKOFF_MAX_SECONDS="1",
    ) as running:
        yield running
    # The test users live on in this run's database: their endpoints go with this module (once
    # its worker has stopped writing attempts), or every later job of theirs would queue
    # deliveries to a receiver that has stopped.
    from jobs.webhooks.models import WebhookEndpoint

    with django_db_blocker.unblock():
        WebhookEndpoint.objects.all().delete()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


def sdk(spool: Spool, user: User, webhook_secret: str | None = None) -> OpenAI:
    return OpenAI(base_url=f"{spool.base_url}/v1", api_key=user.secret_key, webhook_secret=webhook_secret)


def register(spool: Spool, user: User, receiver: Receiver, path: str, events: list[str]) -> str:
    """Registers an endpoint with the SDK; returns its signing secret (shown this once)."""
    created = sdk(spool, user).webhooks.create(url=receiver.url(path), event_types=events, name=path)  # type: ignore[arg-type]
    assert created.signing_secret.startswith("whsec_")
    return created.signing_secret


def unwrapped(secret: str, got: Received) -> dict[str, Any]:
    """The event, verified by the SDK exactly as a receiver would."""
    event = OpenAI(api_key="unused", webhook_secret=secret).webhooks.unwrap(got.body, got.headers)
    return event.to_dict()


def events_at(receiver: Receiver, path: str, secret: str, count: int) -> list[dict[str, Any]]:
    got = receiver.wait_for(path, lambda r: len(r) >= count)
    return [unwrapped(secret, g) for g in got]


def native(spool: Spool, user: User) -> httpx.Client:
    return httpx.Client(
        base_url=f"{spool.base_url}/v1", headers={"Authorization": f"Bearer {user.secret_key}"}
    )


def test_a_semoss_job_that_succeeds_and_one_cancelled_are_delivered_signed(spool, receiver):
    secret = register(spool, spool.alice, receiver, "/semoss", JOB_EVENTS)
    frontend = Frontend(spool, spool.alice)
    done = frontend.submit(spool.engine_id, "Tell me of the king.", {"max_completion_tokens": 5, **NO_EOT})
    frontend.stream(done)
    cancelled = frontend.submit(
        spool.engine_id, "Speak at length.", {"max_completion_tokens": 3000, **NO_EOT}
    )
    frontend.post("/engine/terminate", jobId=cancelled)

    events = {e["data"]["id"]: e for e in events_at(receiver, "/semoss", secret, 2)}
    assert events[done]["type"] == "job.succeeded"
    assert events[done]["object"] == "event" and events[done]["id"].startswith("evt_")
    assert events[done]["data"] | {"usage": None} == {
        "id": done,
        "object": "job",
        "face": "semoss",
        "face_id": done,  # the SEMOSS jobId is the job's id
        "status": "succeeded",
        "finish_reason": "length",
        "usage": None,
    }
    assert events[done]["data"]["usage"]["output_tokens"] == 5
    assert events[cancelled]["type"] == "job.cancelled"
    assert events[cancelled]["data"]["status"] == "cancelled"


def test_a_native_job_that_succeeds_and_one_cancelled_are_delivered_signed(spool, receiver, pg):
    from jobs.models import Job

    secret = register(spool, spool.alice, receiver, "/native", JOB_EVENTS)
    with native(spool, spool.alice) as http:
        done = http.post(
            "/jobs", json={"engine": "spool-offline", "command": "Speak.", "parameters": {"max_tokens": 4}}
        ).json()["id"]
        long = {
            "engine": "spool-offline",
            "command": "Speak on.",
            "parameters": {"max_tokens": 3000, **NO_EOT},
        }
        cancelled = http.post("/jobs", json=long).json()["id"]
        assert http.post(f"/jobs/{cancelled}/cancel").status_code == 200

    events = {e["data"]["id"]: e for e in events_at(receiver, "/native", secret, 2)}
    assert events[done]["type"] == "job.succeeded"
    assert events[done]["data"]["face"] == "jobs" and events[done]["data"]["face_id"] == done
    assert events[cancelled]["type"] == "job.cancelled"
    # How long after the job's final commit its event arrived (recorded, not asserted).
    [arrived] = [g for g in receiver.at("/native") if json.loads(g.body)["data"]["id"] == done]
    ended = Job.objects.get(pk=done).finished_at.timestamp()
    record_figures(spool, "webhooks", job_end_to_delivery_seconds=round(arrived.at - ended, 3))


def test_an_openai_face_job_names_its_chat_completion_id(spool, receiver):
    secret = register(spool, spool.alice, receiver, "/openai", ["job.succeeded"])
    completion = sdk(spool, spool.alice).chat.completions.create(
        model="spool-offline", messages=[{"role": "user", "content": "Speak."}], max_completion_tokens=3
    )
    [event] = events_at(receiver, "/openai", secret, 1)
    assert event["type"] == "job.succeeded"
    assert event["data"]["face"] == "openai"
    assert event["data"]["face_id"] == completion.id


def test_a_background_response_is_delivered_as_openais_response_completed(spool, receiver, engine_for):
    """OpenAI's own event for a background response, which the SDK unwraps into its typed
    event; the job's event comes too, for an endpoint that asked for both."""
    secret = register(spool, spool.alice, receiver, "/responses", ["response.completed", "job.succeeded"])
    client = sdk(spool, spool.alice, webhook_secret=secret)
    # An upstream that ends with "stop": a response cut by its token limit is "incomplete".
    response = client.responses.create(model=engine_for("fake?tokens=3"), input="Hi.", background=True)
    assert response.status in ("queued", "in_progress")

    got = receiver.wait_for("/responses", lambda r: len(r) >= 2)
    events = {e.type: e for e in (client.webhooks.unwrap(g.body, g.headers) for g in got)}
    completed = events["response.completed"]
    assert isinstance(completed, openai.types.webhooks.ResponseCompletedWebhookEvent)
    assert completed.data.id == response.id
    # By the time it is told, the response reads as completed.
    assert client.responses.retrieve(response.id).status == "completed"
    [job_event] = [unwrapped(secret, g) for g in got if json.loads(g.body)["type"] == "job.succeeded"]
    assert job_event["data"]["face"] == "responses" and job_event["data"]["face_id"] == response.id


def test_a_receiver_that_fails_twice_gets_the_event_on_the_third_attempt_with_the_same_id(spool, receiver):
    receiver.scripts["/flaky"] = [500, 500]
    secret = register(spool, spool.alice, receiver, "/flaky", ["job.succeeded"])
    with native(spool, spool.alice) as http:
        job = http.post(
            "/jobs", json={"engine": "spool-offline", "command": "Hi.", "parameters": {"max_tokens": 2}}
        )
    got = receiver.wait_for("/flaky", lambda r: len(r) >= 3)
    assert len({g.headers["webhook-id"] for g in got}) == 1
    assert unwrapped(secret, got[2])["data"]["id"] == job.json()["id"]

    # The delivery log says the same: three attempts, 500, 500, 200, then delivered.
    client = sdk(spool, spool.alice)
    endpoint = next(e for e in client.webhooks.list() if e.url.endswith("/flaky"))
    deadline = time.monotonic() + 30
    while True:
        [delivery] = client.get(
            f"/webhook_endpoints/{endpoint.id}/deliveries", cast_to=httpx.Response
        ).json()["data"]
        if delivery["status"] != "pending" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert delivery["status"] == "delivered"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 200]
    assert all(a["latency_ms"] is not None for a in delivery["attempts"])
    assert delivery["event_id"] == got[0].headers["webhook-id"]


def test_a_tampered_body_or_an_old_timestamp_fails_unwrap(spool, receiver):
    from jobs.webhooks.signing import signature

    secret = register(spool, spool.alice, receiver, "/tamper", ["job.succeeded"])
    with native(spool, spool.alice) as http:
        http.post(
            "/jobs", json={"engine": "spool-offline", "command": "Hi.", "parameters": {"max_tokens": 2}}
        )
    [got] = receiver.wait_for("/tamper", lambda r: len(r) >= 1)
    assert unwrapped(secret, got)["type"] == "job.succeeded"

    tampered = json.loads(got.body)
    tampered["data"]["status"] = "failed"
    with pytest.raises(openai.InvalidWebhookSignatureError):
        unwrapped(secret, Received(got.path, got.headers, json.dumps(tampered).encode()))

    # Correctly signed, but ten minutes old: the SDK's replay window (5 minutes) refuses it.
    old = int(time.time()) - 600
    replayed = {
        **got.headers,
        "webhook-timestamp": str(old),
        "webhook-signature": signature(
            secret=secret, message_id=got.headers["webhook-id"], timestamp=old, body=got.body
        ),
    }
    with pytest.raises(openai.InvalidWebhookSignatureError, match="too old"):
        unwrapped(secret, Received(got.path, replayed, got.body))
    with pytest.raises(openai.InvalidWebhookSignatureError):
        unwrapped("whsec_" + "A" * 43 + "=", got)  # another endpoint's secret


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/hook",  # private
        "http://192.168.0.10/hook",  # private
        "http://169.254.169.254/latest/meta-data",  # link-local (cloud metadata)
        "http://[fd00::1]/hook",  # private (unique local)
        "http://0.0.0.0/hook",  # unspecified
        "http://224.0.0.1/hook",  # multicast
    ],
)
def test_a_private_address_is_refused_at_registration(spool, url):
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(spool, spool.alice).webhooks.create(url=url, event_types=["job.succeeded"], name="x")  # type: ignore[list-item]
    assert refused.value.body["param"] == "url"
    assert "public addresses" in refused.value.body["message"]


def test_another_owners_endpoint_never_sees_the_events(spool, receiver, pg):
    from jobs.webhooks.models import WebhookDelivery

    alice_secret = register(spool, spool.alice, receiver, "/alice", JOB_EVENTS)
    bob_secret = register(spool, spool.bob, receiver, "/bob", JOB_EVENTS)
    with native(spool, spool.alice) as http:
        alices = [
            http.post(
                "/jobs", json={"engine": "spool-offline", "command": "Hi.", "parameters": {"max_tokens": 2}}
            ).json()["id"]
            for _ in range(3)
        ]
    with native(spool, spool.bob) as http:
        bobs = http.post(
            "/jobs", json={"engine": "spool-offline", "command": "Hi.", "parameters": {"max_tokens": 2}}
        )
    # Bob's endpoint works: it gets his job (so silence about Alice's is no broken endpoint).
    [bob_event] = events_at(receiver, "/bob", bob_secret, 1)
    assert bob_event["data"]["id"] == bobs.json()["id"]
    got = receiver.wait_for(
        "/alice", lambda r: {unwrapped(alice_secret, g)["data"]["id"] for g in r} >= set(alices)
    )
    assert len(got) == 3
    assert [unwrapped(bob_secret, g)["data"]["id"] for g in receiver.at("/bob")] == [bobs.json()["id"]]
    # Deliveries are written with the job's end, for every endpoint at once: none is Bob's.
    assert not WebhookDelivery.objects.filter(endpoint__owner__username="bob", job_id__in=alices).exists()

    # Nor can Bob see or change Alice's endpoint: it does not exist for him.
    alice_endpoint = next(e for e in sdk(spool, spool.alice).webhooks.list() if e.url.endswith("/alice"))
    bob = sdk(spool, spool.bob)
    assert all(not e.url.endswith("/alice") for e in bob.webhooks.list())
    with pytest.raises(openai.NotFoundError):
        bob.webhooks.retrieve(alice_endpoint.id)
    with pytest.raises(openai.NotFoundError):
        bob.webhooks.delete(alice_endpoint.id)


def test_the_endpoint_api_never_shows_the_secret_again_and_rotates_it(spool, receiver):
    client = sdk(spool, spool.alice)
    created = client.webhooks.create(url=receiver.url("/rotate"), event_types=["job.succeeded"], name="r")  # type: ignore[list-item]
    fetched = client.webhooks.retrieve(created.id)
    assert "signing_secret" not in fetched.to_dict()
    assert fetched.signing_secret_hint == f"whsec_...{created.signing_secret[-4:]}"
    rotated = client.webhooks.rotate_secret(created.id)
    assert rotated.signing_secret != created.signing_secret

    with native(spool, spool.alice) as http:
        http.post(
            "/jobs", json={"engine": "spool-offline", "command": "Hi.", "parameters": {"max_tokens": 2}}
        )
    [got] = receiver.wait_for("/rotate", lambda r: len(r) >= 1)
    assert unwrapped(rotated.signing_secret, got)["type"] == "job.succeeded"
    with pytest.raises(openai.InvalidWebhookSignatureError):
        unwrapped(created.signing_secret, got)

    disabled = client.webhooks.update(created.id, extra_body={"enabled": False})
    assert disabled.to_dict()["enabled"] is False
    assert disabled.to_dict()["disabled_reason"] == "Disabled by its owner."
    assert client.webhooks.delete(created.id).deleted is True


# ---- the README's receiver -------------------------------------------------------------------


def test_the_readme_receiver_keeps_a_verified_event_once_and_refuses_a_forged_one(
    spool, receiver, monkeypatch
):
    import importlib.util
    from pathlib import Path

    from django.test import RequestFactory

    path = Path(__file__).resolve().parents[2] / "client" / "examples" / "webhook_receiver.py"
    assert path.read_text() in (path.parents[2] / "README.md").read_text()
    spec = importlib.util.spec_from_file_location("spool_webhook_receiver_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    secret = register(spool, spool.alice, receiver, "/readme", ["job.succeeded"])
    monkeypatch.setattr(example, "verifier", OpenAI(api_key="unused", webhook_secret=secret))
    with native(spool, spool.alice) as http:
        job = http.post(
            "/jobs", json={"engine": "spool-offline", "command": "Hi.", "parameters": {"max_tokens": 2}}
        )
    [got] = receiver.wait_for("/readme", lambda r: len(r) >= 1)

    def post(body: bytes, headers: dict[str, str]) -> int:
        meta = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}
        meta.pop("HTTP_CONTENT_TYPE", None)
        meta.pop("HTTP_CONTENT_LENGTH", None)
        request = RequestFactory().post("/hooks/spool", data=body, content_type="application/json", **meta)
        return example.spool_webhook(request).status_code

    assert post(got.body, got.headers) == 200
    assert post(got.body, got.headers) == 200  # a retry of the same event: kept once
    [kept] = example.events.values()
    assert kept["type"] == "job.succeeded" and kept["data"]["id"] == job.json()["id"]
    assert post(got.body.replace(b"succeeded", b"failed"), got.headers) == 400
    assert post(got.body, {}) == 400
    assert len(example.events) == 1
