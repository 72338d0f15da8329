"""The scheduler in the admin, through Django's test client as a staff user: an engine's limits and
its live queue, a key's priority cap and weight, a queued job's place in its engine's queue."""

from __future__ import annotations

import html
import re

import pytest

from jobs import queueing, services
from jobs.models import ApiKey, Engine, Job
from jobs.scheduling import admission
from tests.redis_outage import redis_down  # noqa: F401  (a fixture)
from tests.support import NO_DEPLOYMENTS

pytestmark = pytest.mark.django_db

ENGINES = "/admin/jobs/engine/"
KEYS = "/admin/jobs/apikey/"


@pytest.fixture
def no_workers(monkeypatch):
    """The jobs admitted are only counted: no Celery worker runs in these tests."""
    sent: list[str] = []
    monkeypatch.setattr(queueing, "send_job", sent.append)
    return sent


@pytest.fixture
def status_reads(monkeypatch):
    """The engines whose queue was read from Redis, in order (each read still goes to Redis)."""
    names: list[str] = []
    real = admission.status

    def counted(engine, job_id=""):
        names.append(engine.name)
        return real(engine, job_id)

    monkeypatch.setattr(admission, "status", counted)
    return names


def cells(page: str, name: str) -> dict[str, str]:
    """The cells of the change list's row whose link reads `name`, by column (field-<column>)."""
    row = next(part for part in page.split("<tr") if f">{name}</a>" in part)
    return {
        column: html.unescape(re.sub(r"<[^>]+>", "", text)).strip()
        for column, text in re.findall(r'class="field-(\w+)[^"]*">(.*?)</t[dh]>', row, re.S)
    }


def readonly(page: str, field: str) -> str | None:
    found = re.search(rf'field-{field}.*?<div class="readonly">(.*?)</div>', page, re.S)
    return html.unescape(found.group(1)).strip() if found else None


def wait_in(engine: Engine, job_id: str, priority: str, tenant: str = "7") -> None:
    admission.submit(engine, admission.Ticket(job_id, priority, tenant, 1, 10, None))


# -- engines --------------------------------------------------------------------------------------


def test_an_engines_limits_are_edited_in_the_admin_with_their_help_texts(admin_client):
    engine = Engine.objects.create(name="vllm", kind="offline")
    change = f"{ENGINES}{engine.pk}/change/"
    page = admin_client.get(change).content.decode()
    for field in ("max_concurrency", "requests_per_minute", "tokens_per_minute"):
        assert re.search(rf'<input type="number" name="{field}"', page)
    assert "Jobs running on it at once, across every worker; empty: no limit." in page
    assert "Jobs started per minute; empty: no limit." in page
    assert "corrected by the usage at the end" in html.unescape(page)

    form = {
        "name": "vllm",
        "kind": "offline",
        "config": "{}",
        "secret": "",
        "is_active": "on",
        **NO_DEPLOYMENTS,
    }
    saved = admin_client.post(
        change, {**form, "max_concurrency": "4", "requests_per_minute": "", "tokens_per_minute": "0"}
    )
    assert saved.status_code == 302, saved.content.decode()[:2000]
    engine.refresh_from_db()
    # 0 is stored as no limit, as empty is: the list says "none", never "0".
    assert (engine.max_concurrency, engine.requests_per_minute, engine.tokens_per_minute) == (4, None, None)

    refused = admin_client.post(change, {**form, "max_concurrency": "-1", "requests_per_minute": "2.5"})
    assert refused.status_code == 200
    errors = html.unescape(refused.content.decode())
    assert "Ensure this value is greater than or equal to 0." in errors and "Enter a whole number." in errors
    engine.refresh_from_db()
    assert (engine.max_concurrency, engine.requests_per_minute) == (4, None)


def test_the_engine_list_shows_each_limited_engines_queue_read_once(admin_client, redis_clean, no_workers,
                                                                    status_reads):  # fmt: skip
    Engine.objects.create(name="free", kind="offline")
    busy = Engine.objects.create(name="busy", kind="offline", max_concurrency=1, tokens_per_minute=90000)
    Engine.objects.create(name="rated", kind="offline", requests_per_minute=600)
    for n, priority in enumerate(["default", "default", "batch", "default"]):
        wait_in(busy, f"job-{n}", priority)
    assert no_workers == ["job-0"]

    page = admin_client.get(ENGINES).content.decode()
    assert sorted(status_reads) == ["busy", "rated"]  # once each; none for the engine without limits
    row = cells(page, "busy")
    assert row["limits"] == "1 at once, 90,000 tokens/min"
    assert row["waiting"] == "0 interactive, 2 default, 1 batch"
    assert row["slots"] == "1 of 1 in use"
    assert row["stopped"] == "engine full"
    rated = cells(page, "rated")
    assert (rated["limits"], rated["waiting"], rated["slots"], rated["stopped"]) == (
        "600 requests/min", "0 interactive, 0 default, 0 batch", "0 in use", "-",
    )  # fmt: skip
    free = cells(page, "free")
    assert (free["limits"], free["waiting"], free["slots"], free["stopped"]) == ("none", "-", "-", "-")


@pytest.mark.usefixtures("redis_down")
def test_the_engine_list_says_unavailable_when_redis_is_down(admin_client, status_reads):
    Engine.objects.create(name="one", kind="offline", max_concurrency=2)
    Engine.objects.create(name="two", kind="offline", requests_per_minute=60)
    Engine.objects.create(name="free", kind="offline")
    response = admin_client.get(ENGINES)
    assert response.status_code == 200
    page = response.content.decode()
    for name in ("one", "two"):
        row = cells(page, name)
        assert (row["waiting"], row["slots"], row["stopped"]) == ("unavailable",) * 3
    assert cells(page, "free")["waiting"] == "-"
    # The first failure stands for the page: the next engine does not wait on Redis again.
    assert len(status_reads) == 1


# -- keys -----------------------------------------------------------------------------------------


def test_a_keys_max_priority_and_weight_are_set_shown_and_edited_in_the_admin(admin_client):
    owner = services.user_ensure(username="ann")
    add = admin_client.get(f"{KEYS}add/").content.decode()
    assert '<option value="interactive" selected>' in add and 'name="weight" value="1"' in add
    assert "The highest priority class its jobs may ask for." in add
    created = admin_client.post(f"{KEYS}add/", {"owner": owner.pk, "name": "etl", "max_priority": "batch",
                                                "weight": "3"})  # fmt: skip
    assert created.status_code == 200
    key = ApiKey.objects.get(owner=owner)
    assert (key.max_priority, key.weight) == ("batch", 3)
    other, _ = services.key_create(owner=owner, name="laptop")

    row = cells(admin_client.get(KEYS).content.decode(), key.access_key)
    assert (row["max_priority"], row["weight"]) == ("batch", "3")
    only_batch = admin_client.get(f"{KEYS}?max_priority__exact=batch").content.decode()
    assert key.access_key in only_batch and other.access_key not in only_batch

    change = f"{KEYS}{key.pk}/change/"
    edited = admin_client.post(change, {"name": "etl", "max_priority": "default", "weight": "2"})
    assert edited.status_code == 302, edited.content.decode()[:2000]
    key.refresh_from_db()
    assert (key.max_priority, key.weight, key.name) == ("default", 2, "etl")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"weight": "0"}, "A weight is at least 1."),
        ({"weight": "-3"}, "Ensure this value is greater than or equal to 0."),
        ({"max_priority": "urgent"}, "Select a valid choice. urgent is not one of the available choices."),
    ],
)
def test_the_admin_refuses_a_weight_below_one_and_an_unknown_class(admin_client, given, message):
    key, _ = services.key_create(owner=services.user_ensure(username="ann"))
    refused = admin_client.post(
        f"{KEYS}{key.pk}/change/", {"name": "", "max_priority": "interactive", "weight": "1", **given}
    )
    assert refused.status_code == 200
    assert message in html.unescape(refused.content.decode())
    key.refresh_from_db()
    assert (key.max_priority, key.weight) == ("interactive", 1)


# -- jobs -----------------------------------------------------------------------------------------


def queued_job(engine: Engine, priority: str) -> Job:
    owner = services.user_ensure(username="ann")
    return Job.objects.create(
        owner=owner, engine=engine, request={"messages": []}, options={"priority": priority}
    )


def test_a_queued_jobs_page_shows_where_it_waits_in_its_engines_queue(admin_client, redis_clean, no_workers):
    engine = Engine.objects.create(name="busy", kind="offline", max_concurrency=1)
    running, first, second = (queued_job(engine, p) for p in ("default", "batch", "batch"))
    for job in (running, first, second):
        admission.submit(engine, admission.ticket_of(job))
    assert no_workers == [str(running.pk)]

    page = admin_client.get(f"/admin/jobs/job/{second.pk}/change/").content.decode()
    assert readonly(page, "queue_place") == (
        "waiting; class batch; 1 ahead of it in its owner's batch queue; admissions stopped: engine full"
    )
    page = admin_client.get(f"/admin/jobs/job/{running.pk}/change/").content.decode()
    assert readonly(page, "queue_place") == "admitted; class default; admissions stopped: engine full"

    lost = queued_job(engine, "default")  # never submitted: its web process died before it could be
    page = admin_client.get(f"/admin/jobs/job/{lost.pk}/change/").content.decode()
    assert readonly(page, "queue_place").startswith("not in its engine's queue")


def test_the_queue_row_is_only_for_a_queued_job_of_a_limited_engine(admin_client, redis_clean):
    free = Engine.objects.create(name="free", kind="offline")
    limited = Engine.objects.create(name="limited", kind="offline", requests_per_minute=10)
    finished = queued_job(limited, "default")
    Job.objects.filter(pk=finished.pk).update(status=Job.Status.SUCCEEDED)
    for job in (queued_job(free, "default"), finished):
        page = admin_client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
        assert readonly(page, "queue_place") is None and readonly(page, "status") is not None


@pytest.mark.usefixtures("redis_down")
def test_a_queued_jobs_page_survives_a_redis_outage(admin_client):
    engine = Engine.objects.create(name="busy", kind="offline", max_concurrency=1)
    job = queued_job(engine, "interactive")
    response = admin_client.get(f"/admin/jobs/job/{job.pk}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert readonly(page, "queue_place") == "unavailable"
    assert "The live log is unavailable: Redis could not be reached." in page
