"""The scheduler's settings from the command line: an engine's limits (spool_engine), a key's
highest priority class and weight (spool_key)."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from jobs import queueing, services
from jobs.models import ApiKey, Deployment, Engine
from jobs.scheduling import admission
from tests.redis_outage import redis_down  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def limits(name: str) -> tuple[int | None, int | None, int | None]:
    engine = Engine.objects.get(name=name)
    return engine.max_concurrency, engine.requests_per_minute, engine.tokens_per_minute


def created(out: str) -> ApiKey:
    lines = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return ApiKey.objects.get(access_key=lines["ACCESS_KEY"])


# -- engines --------------------------------------------------------------------------------------


def test_engine_limit_sets_clears_and_keeps_each_limit():
    run("spool_engine", "add", "vllm", "--base-url", "http://127.0.0.1:8001/v1")
    out = run("spool_engine", "limit", "vllm", "--max-concurrency", "4", "--tokens-per-minute", "100000")
    assert limits("vllm") == (4, None, 100000)
    assert out.strip() == "vllm: max_concurrency=4 requests_per_minute=none tokens_per_minute=100000"

    run("spool_engine", "limit", "vllm", "--requests-per-minute", "60")  # the others stay
    assert limits("vllm") == (4, 60, 100000)

    run("spool_engine", "limit", "vllm", "--max-concurrency", "none", "--tokens-per-minute", "0")
    assert limits("vllm") == (None, 60, None)
    engine = Engine.objects.get(name="vllm")
    run("spool_engine", "limit", str(engine.pk), "--requests-per-minute", "NONE")  # by id too
    assert limits("vllm") == (None, None, None)
    assert not Engine.objects.get(name="vllm").is_limited


def test_engine_add_takes_limits_and_an_update_without_them_keeps_them():
    run("spool_engine", "add", "gw", "--base-url", "http://127.0.0.1:9/v1", "--max-concurrency", "2",
        "--requests-per-minute", "30")  # fmt: skip
    assert limits("gw") == (2, 30, None)
    run("spool_engine", "add", "gw", "--base-url", "http://127.0.0.1:10/v1")
    assert limits("gw") == (2, 30, None)
    assert Engine.objects.get(name="gw").config["base_url"] == "http://127.0.0.1:10/v1"
    run("spool_engine", "add", "gw", "--base-url", "http://127.0.0.1:10/v1", "--requests-per-minute", "0")
    assert limits("gw") == (2, None, None)


def test_engine_list_shows_the_limits_of_a_limited_engine_only():
    run("spool_engine", "add", "free", "--kind", "offline")
    run("spool_engine", "add", "capped", "--kind", "offline", "--max-concurrency", "3",
        "--tokens-per-minute", "5000")  # fmt: skip
    lines = {line.split()[2]: line for line in run("spool_engine", "list").splitlines()}
    free, capped = Engine.objects.get(name="free"), Engine.objects.get(name="capped")
    # The line an unlimited engine always had, unchanged: scripts read it.
    assert lines["free"] == f"{free.pk}  offline   free"
    assert lines["capped"] == (
        f"{capped.pk}  offline   capped  max_concurrency=3 requests_per_minute=none tokens_per_minute=5000"
    )


def test_engine_show_prints_its_limits_and_live_queue(redis_clean, monkeypatch):
    monkeypatch.setattr(queueing, "send_job", lambda job_id: None)  # no Celery worker here
    run("spool_engine", "add", "busy", "--kind", "offline", "--max-concurrency", "1")
    engine = Engine.objects.get(name="busy")
    for n, priority in enumerate(["default", "default", "batch"]):
        admission.submit(engine, admission.Ticket(f"job-{n}", priority, "7", 1, 10, None))
    shown = dict(line.split(None, 1) for line in run("spool_engine", "show", "busy").splitlines())
    assert shown["max_concurrency"] == "1" and shown["requests_per_minute"] == "none"
    assert shown["waiting"] == "0 interactive, 1 default, 1 batch"
    assert shown["slots"] == "1 of 1 in use"
    assert shown["stopped"] == "engine full"
    assert shown["api_key"] == "not set"


@pytest.mark.usefixtures("redis_down")
def test_engine_show_says_when_the_queue_cannot_be_read():
    run("spool_engine", "add", "busy", "--kind", "offline", "--requests-per-minute", "10")
    shown = dict(line.split(None, 1) for line in run("spool_engine", "show", "busy").splitlines())
    assert shown["queue"] == "unavailable" and shown["requests_per_minute"] == "10"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("limit", "e", "--max-concurrency", "-1"), "'-1' is not a limit"),
        (("limit", "e", "--requests-per-minute", "lots"), "'lots' is not a limit"),
        (("limit", "e", "--tokens-per-minute", "2.5"), "'2.5' is not a limit"),
        (("limit", "e", "--max-concurrency", "2147483648"), "from 1 to 2147483647"),
        (("limit", "e"), "nothing to change"),
        (("limit", "nope", "--max-concurrency", "2"), "no engine with id or name 'nope'"),
        (("add", "e", "--kind", "offline", "--max-concurrency", "x"), "'x' is not a limit"),
    ],
)
def test_engine_limits_refuse_what_is_not_one(args, message):
    Engine.objects.create(name="e", kind="offline", max_concurrency=5)
    with pytest.raises(CommandError, match=message):
        run("spool_engine", *args)
    assert limits("e") == (5, None, None)


# -- keys -----------------------------------------------------------------------------------------


def test_key_create_takes_a_max_priority_and_a_weight():
    key = created(run("spool_key", "create", "ivy", "--max-priority", "batch", "--weight", "3"))
    assert (key.max_priority, key.weight) == ("batch", 3)
    plain = created(run("spool_key", "ivy"))
    assert (plain.max_priority, plain.weight) == ("interactive", 1)


def test_key_limit_sets_max_priority_and_weight_and_leaves_the_rest():
    engine = Engine.objects.create(name="kept", kind="offline")
    key = created(run("spool_key", "jo", "--engine", "kept", "--face", "openai"))
    out = run("spool_key", "limit", key.access_key, "--max-priority", "default")
    key.refresh_from_db()
    assert (key.max_priority, key.weight, key.engines, key.faces) == ("default", 1, [engine.pk], ["openai"])
    assert out.strip() == (
        f"{key.access_key} engines: {engine.pk}; faces: openai; max priority: default; weight: 1"
    )
    run("spool_key", "limit", key.access_key, "--weight", "5", "--all-faces")
    key.refresh_from_db()
    assert (key.max_priority, key.weight, key.faces) == ("default", 5, [])


def test_key_list_shows_max_priority_and_weight():
    key = created(run("spool_key", "kim", "--max-priority", "default", "--weight", "4", "--name", "etl job"))
    rows = [line.split() for line in run("spool_key", "list", "--user", "kim").splitlines()]
    assert rows[0][-3:] == ["MAX_PRIORITY", "WEIGHT", "NAME"]
    assert rows[1][0] == key.access_key and rows[1][-4:] == ["default", "4", "etl", "job"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--weight", "0"), "'0' is not a weight"),
        (("--weight", "-2"), "'-2' is not a weight"),
        (("--weight", "heavy"), "'heavy' is not a weight"),
        (("--max-priority", "urgent"), "invalid choice: 'urgent'"),
    ],
)
def test_key_commands_refuse_a_bad_weight_or_class(args, message):
    key = created(run("spool_key", "lee"))
    with pytest.raises(CommandError, match=message):
        run("spool_key", "limit", key.access_key, *args)
    with pytest.raises(CommandError, match=message):
        run("spool_key", "create", "lee", *args)
    key.refresh_from_db()
    assert (key.max_priority, key.weight) == ("interactive", 1)
    assert ApiKey.objects.filter(owner__username="lee").count() == 1


def test_spool_engine_deployment_adds_changes_and_removes_an_upstream_server():
    engine = services.engine_upsert(
        name="deployed-cmd", kind="openai", config={"base_url": "http://127.0.0.1:9/v1"}
    )
    out = io.StringIO()
    call_command(
        "spool_engine", "deployment", "deployed-cmd", "gpu-a", "--base-url", "http://10.0.0.1/v1",
        "--api-key", "sk-a", "--weight", "3", "--max-concurrency", "4", stdout=out,
    )  # fmt: skip
    row = Deployment.objects.get(engine=engine, name="gpu-a")
    assert (row.base_url, row.secret, row.weight, row.max_concurrency) == ("http://10.0.0.1/v1", "sk-a", 3, 4)
    assert "sk-a" not in out.getvalue() and "api_key=set" in out.getvalue()
    engine.refresh_from_db()
    assert engine.has_deployments and engine.is_limited

    call_command(
        "spool_engine", "deployment", "deployed-cmd", "gpu-a", "--max-concurrency", "none", stdout=out
    )
    assert Deployment.objects.get(pk=row.pk).max_concurrency is None
    shown = io.StringIO()
    call_command("spool_engine", "show", "deployed-cmd", stdout=shown)
    assert "deployment gpu-a" in shown.getvalue() and "weight=3" in shown.getvalue()

    call_command("spool_engine", "deployment", "deployed-cmd", "gpu-a", "--remove", stdout=out)
    engine.refresh_from_db()
    assert not engine.has_deployments and not Deployment.objects.filter(engine=engine).exists()


def test_spool_engine_deployment_refuses_what_it_cannot_do():
    services.engine_upsert(name="deployed-bad", kind="openai", config={"base_url": "http://127.0.0.1:9/v1"})
    with pytest.raises(CommandError, match="needs --base-url"):
        call_command("spool_engine", "deployment", "deployed-bad", "new")
    with pytest.raises(CommandError, match="no deployment"):
        call_command("spool_engine", "deployment", "deployed-bad", "absent", "--remove")
    offline = services.engine_ensure_offline()
    with pytest.raises(CommandError, match="only an openai engine"):
        call_command("spool_engine", "deployment", offline.name, "x", "--base-url", "http://x/v1")


def test_spool_engine_fallback_names_and_clears_an_engines_fallback():
    main = services.engine_upsert(
        name="main-cmd", kind="openai", config={"base_url": "http://127.0.0.1:9/v1"}
    )
    spare = services.engine_ensure_offline()
    out = io.StringIO()
    call_command("spool_engine", "fallback", "main-cmd", spare.name, stdout=out)
    main.refresh_from_db()
    assert main.fallback == spare and f"fallback={spare.name}" in out.getvalue()
    with pytest.raises(CommandError, match="its own fallback"):
        call_command("spool_engine", "fallback", "main-cmd", "main-cmd")
    call_command("spool_engine", "fallback", "main-cmd", "none", stdout=out)
    main.refresh_from_db()
    assert main.fallback is None
