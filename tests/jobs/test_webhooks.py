"""Webhooks against real Postgres and Redis, in process: which events a job's end makes and for
whom, every terminal path, the delivery attempt (signature, claim, backoff, Retry-After, giving
up, disabling, redirects, refused addresses), secrets at rest and the address guard. Each
delivery goes over real HTTP to a receiver on 127.0.0.1 and is verified with the openai SDK."""

from __future__ import annotations

import ipaddress
import json
import ssl
from datetime import timedelta
from typing import Any

import pytest
import trustme
from django.db import transaction
from django.utils import timezone
from openai import OpenAI
from openai.types.webhooks import ResponseCompletedWebhookEvent, ResponseIncompleteWebhookEvent

from engine import registry
from engine.types import GenerationRequest
from harness.webhook_receiver import Receiver, running_receiver
from jobs import queueing, services, sweeper
from jobs.models import Engine, Job
from jobs.webhooks import addresses, delivery, endpoints, events, secrets, transport
from jobs.webhooks.models import WebhookDelivery, WebhookEndpoint
from jobs.worker.runner import job_run
from tests.support import ScriptedEngine

# The worker loop's own connections claim and end the jobs: the tests commit them.
pytestmark = pytest.mark.django_db(transaction=True)
ALL = events.EVENT_TYPES


@pytest.fixture(autouse=True)
def setup(monkeypatch, redis_clean, spool_env):
    monkeypatch.setitem(registry.KINDS, "scripted", ScriptedEngine)
    spool_env(SPOOL_WEBHOOK_ALLOWED_NETWORKS=["127.0.0.0/8"])


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, int, float]]:
    """The attempts sent to the queue: (delivery id, attempt number, countdown)."""
    calls: list[tuple[str, int, float]] = []
    monkeypatch.setattr(delivery, "_enqueue", lambda d, n, countdown=0.0: calls.append((d, n, countdown)))
    return calls


@pytest.fixture
def receiver():
    with running_receiver() as running:
        yield running


def owner(name: str = "hooked") -> Any:
    return services.user_ensure(username=name)


def endpoint(
    user: Any, url: str = "http://127.0.0.1:9/hook", types: list[str] = ALL
) -> tuple[WebhookEndpoint, str]:
    return endpoints.endpoint_create(owner=user, url=url, event_types=types)


def finished_job(*, face: str, finish: str = "stop", user: Any = None) -> Job:
    engine = Engine.objects.create(
        name=f"scripted-{Engine.objects.count()}",
        kind="scripted",
        config={
            "script": [
                {"type": "content", "data": {"content": "hi"}},
                {"type": "finish", "data": {"finish_reason": finish}},
            ]
        },
    )
    job = services.job_create(
        owner=user or owner(),
        engine=engine,
        request=GenerationRequest(messages=[{"role": "user", "content": "hi"}]),
        options={},
        face=face,
    )
    job_run(job_id=str(job.pk))
    return job


def deliveries_of(job: Job) -> dict[str, WebhookDelivery]:
    return {d.event_type: d for d in WebhookDelivery.objects.filter(job=job)}


def unwrap(secret: str, receiver: Receiver, path: str) -> Any:
    [got] = receiver.at(path)
    return OpenAI(api_key="unused", webhook_secret=secret).webhooks.unwrap(got.body, got.headers)


# ---- which events, for whom ------------------------------------------------------------------


def test_a_background_response_that_completes_is_delivered_as_openai_sends_it(receiver, sent):
    user = owner()
    hook, secret = endpoint(user, receiver.url("/r"), ["response.completed", "response.incomplete"])
    job = finished_job(face="responses", user=user)
    [only] = deliveries_of(job).values()
    delivery.attempt(delivery_id=str(only.pk), number=1)

    event = unwrap(secret, receiver, "/r")
    assert isinstance(event, ResponseCompletedWebhookEvent)
    assert event.data.id == "resp_" + job.pk.hex
    assert event.object == "event" and event.created_at == int(
        Job.objects.get(pk=job.pk).finished_at.timestamp()
    )
    only.refresh_from_db()
    assert only.status == WebhookDelivery.Status.DELIVERED
    assert [(a.number, a.status_code) for a in only.attempts.all()] == [(1, 200)]


def test_a_response_cut_short_by_its_token_limit_is_incomplete(receiver, sent):
    user = owner()
    hook, secret = endpoint(user, receiver.url("/i"), ["response.incomplete", "response.completed"])
    job = finished_job(face="responses", finish="length", user=user)
    delivery.attempt(delivery_id=str(deliveries_of(job)["response.incomplete"].pk), number=1)
    assert isinstance(unwrap(secret, receiver, "/i"), ResponseIncompleteWebhookEvent)


@pytest.mark.parametrize(
    ("status", "finish", "expected"),
    [
        (Job.Status.SUCCEEDED, "stop", ["job.succeeded", "response.completed"]),
        (Job.Status.SUCCEEDED, "length", ["job.succeeded", "response.incomplete"]),
        (Job.Status.FAILED, "upstream_error", ["job.failed", "response.failed"]),
        (Job.Status.CANCELLED, "cancelled", ["job.cancelled", "response.cancelled"]),
    ],
)
def test_a_responses_job_makes_a_job_event_and_openais_response_event(status, finish, expected):
    job = Job(
        id="2f1c3a52-56f4-4a49-9d38-1d7c0e6f4a11", face="responses", status=status, finish_reason=finish
    )
    made = events.events_for(job)
    assert [e["type"] for e in made] == expected
    assert made[1]["data"] == {"id": "resp_2f1c3a5256f44a499d381d7c0e6f4a11"}
    assert made[0]["data"]["face_id"] == "resp_2f1c3a5256f44a499d381d7c0e6f4a11"


def test_each_face_names_the_job_by_its_own_id():
    job_id = "2f1c3a52-56f4-4a49-9d38-1d7c0e6f4a11"
    assert events.face_id(Job(id=job_id, face="openai")) == "chatcmpl-2f1c3a5256f44a499d381d7c0e6f4a11"
    assert events.face_id(Job(id=job_id, face="semoss")) == job_id
    assert events.face_id(Job(id=job_id, face="jobs")) == job_id


def test_only_the_owners_enabled_endpoints_that_want_the_type_get_a_delivery(
    sent, django_capture_on_commit_callbacks
):
    alice, bob = owner("alice-w"), owner("bob-w")
    wants_all, _ = endpoint(alice)
    wants_failures, _ = endpoint(alice, types=["job.failed"])
    disabled, _ = endpoint(alice)
    endpoints.endpoint_update(endpoint=disabled, changes={"enabled": False})
    bobs, _ = endpoint(bob)
    with django_capture_on_commit_callbacks(execute=True):
        job = finished_job(face="jobs", user=alice)
    made = list(WebhookDelivery.objects.filter(job=job))
    assert [(d.endpoint_id, d.event_type) for d in made] == [(wants_all.pk, "job.succeeded")]
    assert sent == [(str(made[0].pk), 1, 0.0)]  # sent once the job's end was committed
    assert not WebhookDelivery.objects.filter(endpoint=bobs).exists()


@pytest.mark.django_db(transaction=True)  # the runner's own commit, not the test's savepoint
def test_the_worker_sends_a_jobs_events_once_its_log_has_ended(monkeypatch):
    """Readers wait for the log's end, not for the broker: the events' publish comes after it."""
    from jobs import chunklog
    from jobs.redis_clients import sync_redis

    user = owner()
    endpoint(user, types=["job.succeeded"])
    last_chunk_when_sent: list[str] = []

    def enqueue(delivery_id: str, number: int, countdown: float = 0.0) -> None:
        job_id = str(WebhookDelivery.objects.get(pk=delivery_id).job_id)
        last = sync_redis().lindex(chunklog.chunks_key(job_id), -1)
        last_chunk_when_sent.append(json.loads(last)["type"])

    monkeypatch.setattr(delivery, "_enqueue", enqueue)
    finished_job(face="jobs", user=user)
    assert last_chunk_when_sent == ["finish"]


def test_a_job_whose_owner_has_no_endpoint_makes_nothing_for_one_query(django_assert_num_queries):
    job = finished_job(face="jobs")
    assert not WebhookDelivery.objects.filter(job=job).exists()
    with django_assert_num_queries(1):  # what webhooks add to every job's end
        events.job_ended(job.pk)


def test_cancelling_a_queued_job_makes_job_cancelled(sent, django_capture_on_commit_callbacks):
    user = owner()
    endpoint(user)
    job = services.job_create(
        owner=user,
        engine=services.engine_ensure_offline(),
        request=GenerationRequest(messages=[{"role": "user", "content": "x"}]),
        options={},
        face="semoss",
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.job_cancel(job.pk)
        services.job_cancel(job.pk)  # twice is harmless: one event
    [cancelled] = WebhookDelivery.objects.filter(job=job)
    assert cancelled.event_type == "job.cancelled"
    assert cancelled.payload["data"]["face_id"] == str(job.pk)
    assert len(sent) == 1


def test_a_job_ended_by_the_sweeper_makes_job_failed(monkeypatch, sent):
    from jobs import chunklog
    from jobs.redis_clients import sync_redis

    monkeypatch.setattr(queueing, "send_job", lambda job_id: None)
    user = owner()
    endpoint(user)
    job = services.job_create(
        owner=user,
        engine=services.engine_ensure_offline(),
        request=GenerationRequest(messages=[{"role": "user", "content": "x"}]),
        options={},
        face="jobs",
    )
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.RUNNING, started_at=timezone.now() - timedelta(minutes=5)
    )
    chunklog.append(str(job.pk), [{"type": "content", "data": {"content": "half"}}])
    sync_redis().delete(chunklog.alive_key(str(job.pk)))
    sweeper.sweep()
    [failed] = WebhookDelivery.objects.filter(job=job)
    assert failed.event_type == "job.failed"
    assert failed.payload["data"]["finish_reason"] == "worker_lost"


def test_a_final_commit_retried_through_a_postgres_outage_makes_its_events_once(monkeypatch, sent):
    from django.db import OperationalError

    from jobs import lifecycle

    user = owner()
    endpoint(user)
    failures = [OperationalError("the connection dropped mid-commit")]

    def flaky_job_ended(job_id: Any) -> None:
        events.job_ended(job_id)  # written, then rolled back with the rest of the commit
        if failures:
            raise failures.pop()

    monkeypatch.setattr(lifecycle, "job_ended", flaky_job_ended)
    job = finished_job(face="jobs", user=user)
    assert [d.event_type for d in WebhookDelivery.objects.filter(job=job)] == ["job.succeeded"]


def test_a_terminal_transition_rolled_back_sends_nothing(sent, django_capture_on_commit_callbacks):
    user = owner()
    endpoint(user)
    job = services.job_create(
        owner=user,
        engine=services.engine_ensure_offline(),
        request=GenerationRequest(messages=[{"role": "user", "content": "x"}]),
        options={},
        face="jobs",
    )
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        services.job_cancel(job.pk)
        raise RuntimeError("the caller's transaction fails")
    assert not WebhookDelivery.objects.filter(job=job).exists()
    assert sent == []


# ---- an attempt ------------------------------------------------------------------------------


def pending(
    receiver: Receiver, path: str, sent: list | None = None, **changes: Any
) -> tuple[WebhookDelivery, str]:
    """A job's delivery, its first attempt sent (and forgotten from `sent`) but not yet made."""
    user = owner()
    hook, secret = endpoint(user, receiver.url(path), ["job.succeeded"])
    if changes:
        WebhookEndpoint.objects.filter(pk=hook.pk).update(**changes)
    job = finished_job(face="jobs", user=user)
    if sent is not None:
        sent.clear()
    return deliveries_of(job)["job.succeeded"], secret


def test_a_task_delivered_twice_makes_one_attempt(receiver, sent):
    made, _ = pending(receiver, "/twice")
    delivery.attempt(delivery_id=str(made.pk), number=1)
    delivery.attempt(delivery_id=str(made.pk), number=1)
    assert len(receiver.at("/twice")) == 1
    assert made.attempts.count() == 1


def test_a_failed_attempt_is_retried_later_with_backoff(receiver, sent, spool_env):
    spool_env(SPOOL_WEBHOOK_BACKOFF_SECONDS=10.0)
    receiver.scripts["/fail"] = [500]
    made, _ = pending(receiver, "/fail", sent)
    delivery.attempt(delivery_id=str(made.pk), number=1)
    [(delivery_id, number, countdown)] = sent
    assert (delivery_id, number) == (str(made.pk), 2)
    assert 5.0 <= countdown <= 10.0
    made.refresh_from_db()
    assert made.status == WebhookDelivery.Status.PENDING
    [attempt] = made.attempts.all()
    assert (attempt.status_code, attempt.error) == (500, "answered 500")


def test_retry_after_is_honoured(receiver, sent, spool_env):
    spool_env(SPOOL_WEBHOOK_BACKOFF_SECONDS=1.0)
    receiver.scripts["/busy"] = [(503, {"Retry-After": "120"})]
    made, _ = pending(receiver, "/busy", sent)
    delivery.attempt(delivery_id=str(made.pk), number=1)
    assert sent[0][2] == 120.0


def test_the_backoff_doubles_with_jitter_up_to_its_ceiling(spool_env):
    spool_env(SPOOL_WEBHOOK_BACKOFF_SECONDS=5.0)
    spool_env(SPOOL_WEBHOOK_BACKOFF_MAX_SECONDS=3600.0)
    for attempt, ceiling in [(1, 5), (2, 10), (3, 20), (10, 2560), (11, 3600), (30, 3600)]:
        waits = [delivery.backoff_seconds(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 1  # jittered


def test_a_delivery_gives_up_after_a_day(receiver, sent):
    receiver.scripts["/down"] = [500]
    made, _ = pending(receiver, "/down", sent)
    WebhookDelivery.objects.filter(pk=made.pk).update(retrying_since=timezone.now() - timedelta(days=1))
    delivery.attempt(delivery_id=str(made.pk), number=1)
    made.refresh_from_db()
    assert made.status == WebhookDelivery.Status.FAILED
    assert sent == []


def test_an_endpoint_failing_for_a_day_is_disabled_saying_why(receiver, sent):
    receiver.scripts["/dead"] = [500]
    made, _ = pending(receiver, "/dead", failing_since=timezone.now() - timedelta(days=1, minutes=1))
    delivery.attempt(delivery_id=str(made.pk), number=1)
    hook = WebhookEndpoint.objects.get(pk=made.endpoint_id)
    assert hook.enabled is False
    assert "every delivery since" in hook.disabled_reason and "answered 500" in hook.disabled_reason

    # Its pending delivery then ends at its next attempt without a request.
    delivery.attempt(delivery_id=str(made.pk), number=2)
    made.refresh_from_db()
    assert made.status == WebhookDelivery.Status.FAILED
    assert len(receiver.at("/dead")) == 1


def test_a_success_ends_the_failure_clock(receiver, sent):
    made, _ = pending(receiver, "/back", failing_since=timezone.now() - timedelta(hours=3))
    delivery.attempt(delivery_id=str(made.pk), number=1)
    assert WebhookEndpoint.objects.get(pk=made.endpoint_id).failing_since is None


def test_a_redirect_is_not_followed(receiver, sent):
    receiver.scripts["/moved"] = [(302, {"Location": receiver.url("/elsewhere")})]
    made, _ = pending(receiver, "/moved")
    delivery.attempt(delivery_id=str(made.pk), number=1)
    assert receiver.at("/elsewhere") == []
    assert made.attempts.get().status_code == 302


def test_an_address_forbidden_since_registration_is_not_called(receiver, sent, spool_env):
    made, _ = pending(receiver, "/now-forbidden")
    spool_env(SPOOL_WEBHOOK_ALLOWED_NETWORKS=[])
    delivery.attempt(delivery_id=str(made.pk), number=1)
    assert receiver.at("/now-forbidden") == []
    assert "loopback" in made.attempts.get().error


def test_send_again_keeps_the_event_id_and_starts_a_new_day(
    receiver, sent, django_capture_on_commit_callbacks
):
    made, secret = pending(receiver, "/again")
    delivery.attempt(delivery_id=str(made.pk), number=1)
    with django_capture_on_commit_callbacks(execute=True):
        endpoints.delivery_resend(delivery=made)
    assert sent[-1] == (str(made.pk), 2, 0.0)
    delivery.attempt(delivery_id=str(made.pk), number=2)
    first, second = receiver.at("/again")
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == made.event_id
    assert OpenAI(api_key="x", webhook_secret=secret).webhooks.unwrap(second.body, second.headers)


def test_after_send_again_the_backoff_starts_afresh(
    receiver, sent, spool_env, django_capture_on_commit_callbacks
):
    spool_env(SPOOL_WEBHOOK_BACKOFF_SECONDS=10.0)
    receiver.scripts["/afresh"] = [500, 500, 500]
    made, _ = pending(receiver, "/afresh")
    delivery.attempt(delivery_id=str(made.pk), number=1)
    delivery.attempt(delivery_id=str(made.pk), number=2)
    assert 10.0 <= sent[-1][2] <= 20.0  # the second wait
    with django_capture_on_commit_callbacks(execute=True):
        endpoints.delivery_resend(delivery=made)
    delivery.attempt(delivery_id=str(made.pk), number=3)
    assert 5.0 <= sent[-1][2] <= 10.0  # the first wait again


def test_the_sweeper_sends_again_a_delivery_whose_message_was_lost(receiver, sent):
    made, _ = pending(receiver, "/lost", sent)
    WebhookDelivery.objects.filter(pk=made.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=5))
    assert delivery.send_overdue() == 1
    assert sent == [(str(made.pk), 1, 0.0)]
    # Not again on the next sweep while that message waits its turn in a busy queue.
    assert delivery.send_overdue() == 0
    assert len(sent) == 1


def test_a_rotation_that_keeps_the_old_secret_signs_with_both(receiver, sent):
    made, old = pending(receiver, "/both")
    hook = WebhookEndpoint.objects.get(pk=made.endpoint_id)
    new = endpoints.endpoint_rotate_secret(endpoint=hook, keep_old_for=timedelta(hours=24))
    delivery.attempt(delivery_id=str(made.pk), number=1)
    [got] = receiver.at("/both")
    for secret in (old, new):
        OpenAI(api_key="x", webhook_secret=secret).webhooks.unwrap(got.body, got.headers)


# ---- secrets and addresses -------------------------------------------------------------------


def test_a_secret_is_stored_encrypted_and_survives_a_secret_key_rotation(settings):
    hook, secret = endpoint(owner())
    stored = WebhookEndpoint.objects.get(pk=hook.pk).secret_encrypted
    assert secret not in stored and secret.removeprefix("whsec_") not in stored
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40
    assert secrets.decrypt(stored) == secret


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("::ffff:10.0.0.1", "private"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
    ],
)
def test_non_public_addresses_are_refused(address, kind, spool_env):
    spool_env(SPOOL_WEBHOOK_ALLOWED_NETWORKS=[])
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(addresses.RefusedAddress, match=kind):
        addresses.check_url(f"http://{host}/hook")


def test_a_public_address_or_an_allowed_network_passes(spool_env):
    spool_env(SPOOL_WEBHOOK_ALLOWED_NETWORKS=["10.1.0.0/16"])
    addresses.check_url("https://93.184.215.14/hook")
    addresses.check_url("http://10.1.2.3:8080/hook")
    with pytest.raises(addresses.RefusedAddress):
        addresses.check_url("http://10.2.0.1/hook")


def test_a_name_is_judged_by_every_address_it_resolves_to(spool_env):
    spool_env(SPOOL_WEBHOOK_ALLOWED_NETWORKS=[])
    resolved = [ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address("10.0.0.7")]
    with pytest.raises(addresses.RefusedAddress, match="10.0.0.7, a private address"):
        addresses.check_url("https://hooks.example.com/x", resolver=lambda host, port: resolved)


@pytest.mark.parametrize("url", ["ftp://93.184.215.14/x", "http:///nohost", "http://93.184.215.14:99999/"])
def test_a_url_that_is_not_http_with_a_host_is_refused(url):
    with pytest.raises(addresses.RefusedAddress):
        addresses.check_url(url)


# ---- the connection goes to the address that was checked -------------------------------------


class Resolver:
    """A resolver of the test's own: each look-up gets the next of its answers (the last one
    again once they run out); it keeps the look-ups it was asked."""

    def __init__(self, *answers: str) -> None:
        self.answers = answers
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[addresses.IPAddress]:
        self.asked.append((host, port))
        return [ipaddress.ip_address(self.answers[min(len(self.asked), len(self.answers)) - 1])]


@pytest.fixture
def public_and_private(spool_env):
    """Receivers on one port of two loopback addresses: 127.0.0.2 stands for a public address
    (its network is allowed) and 127.0.0.3 for a private one; one URL could reach either."""
    spool_env(SPOOL_WEBHOOK_ALLOWED_NETWORKS=["127.0.0.2/32"])
    with running_receiver("127.0.0.2") as public:
        port = int(public.base_url.rsplit(":", 1)[1])
        with running_receiver("127.0.0.3", port) as private:
            yield public, private, port


def attempt_with(
    made: WebhookDelivery, resolver: Resolver, ssl_context: ssl.SSLContext | None = None
) -> None:
    with transport.checked_client(
        timeout=delivery.timeout(), resolver=resolver, ssl_context=ssl_context
    ) as http:
        delivery.attempt(delivery_id=str(made.pk), number=1, http=http)


def test_the_connection_goes_to_the_checked_address_though_the_name_resolves_elsewhere_after(
    public_and_private, sent
):
    public, private, port = public_and_private
    made, secret = pending(public, "/pinned", url=f"http://hooks.test:{port}/pinned")
    resolver = Resolver("127.0.0.2", "127.0.0.3")  # public at the check, private at any later look-up
    attempt_with(made, resolver)
    assert private.at("/pinned") == []
    [got] = public.at("/pinned")
    assert got.headers["host"] == f"hooks.test:{port}"
    assert resolver.asked == [("hooks.test", port)]  # the one look-up the check made
    assert made.attempts.get().status_code == 200
    assert OpenAI(api_key="x", webhook_secret=secret).webhooks.unwrap(got.body, got.headers)


def test_a_name_that_resolves_to_a_forbidden_address_when_connecting_is_not_called(public_and_private, sent):
    public, private, port = public_and_private
    made, _ = pending(public, "/turned", url=f"http://hooks.test:{port}/turned")
    attempt_with(made, Resolver("127.0.0.3"))
    assert private.at("/turned") == [] and public.at("/turned") == []
    assert "resolves to 127.0.0.3, a loopback address" in made.attempts.get().error


@pytest.mark.parametrize(("certified", "delivered"), [("hooks.test", True), ("other.test", False)])
def test_tls_is_verified_against_the_host_name_while_connecting_to_the_checked_address(
    certified, delivered, spool_env, sent
):
    spool_env(SPOOL_WEBHOOK_ALLOWED_NETWORKS=["127.0.0.2/32"])
    ca = trustme.CA()
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(certified).configure_cert(server_tls)
    sni: list[str | None] = []
    server_tls.sni_callback = lambda sock, name, context: sni.append(name)
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    with running_receiver("127.0.0.2", tls=server_tls) as receiver:
        port = int(receiver.base_url.rsplit(":", 1)[1])
        made, _ = pending(receiver, "/tls", url=f"https://hooks.test:{port}/tls")
        attempt_with(made, Resolver("127.0.0.2"), trusting)
    assert sni == ["hooks.test"]  # the name, not the address it connected to
    if delivered:
        [got] = receiver.at("/tls")
        assert got.headers["host"] == f"hooks.test:{port}" and made.attempts.get().status_code == 200
    else:
        assert receiver.at("/tls") == []
        assert "CERTIFICATE_VERIFY_FAILED" in made.attempts.get().error
