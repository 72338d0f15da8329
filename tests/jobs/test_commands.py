"""Management commands: bootstrap, keys and engines."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from jobs.keys import hash_secret
from jobs.models import ApiKey, Engine

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_bootstrap_registers_the_offline_engine_and_prints_a_working_key_pair(tmp_path):
    keys = tmp_path / "keys.json"
    info = json.loads(run("spool_bootstrap", "--keys-file", str(keys), "--json"))
    engine = Engine.objects.get(pk=info["engine_id"])
    assert engine.kind == "offline"
    key = ApiKey.objects.get(access_key=info["access_key"])
    assert key.secret_hash == hash_secret(info["secret_key"])
    assert info["secret_key"] not in key.secret_hash


def test_bootstrap_prints_the_same_pair_on_every_start(tmp_path):
    keys = tmp_path / "keys.json"
    first = json.loads(run("spool_bootstrap", "--keys-file", str(keys), "--json"))
    second = json.loads(run("spool_bootstrap", "--keys-file", str(keys), "--json"))
    assert first == second
    assert ApiKey.objects.count() == 1


def test_bootstrap_registers_an_upstream_engine_from_the_environment(tmp_path, spool_env):
    spool_env(
        SPOOL_UPSTREAM_BASE_URL="http://127.0.0.1:9/v1",
        SPOOL_UPSTREAM_MODEL="llama",
        SPOOL_UPSTREAM_API_KEY="sk-upstream",
    )
    info = json.loads(run("spool_bootstrap", "--keys-file", str(tmp_path / "k.json"), "--json"))
    engine = Engine.objects.get(pk=info["upstream_engine_id"])
    assert engine.config == {"base_url": "http://127.0.0.1:9/v1", "model": "llama", "text_tools": False}
    assert engine.secret == "sk-upstream"


def test_engine_add_stores_the_key_apart_and_never_prints_it():
    out = run("spool_engine", "add", "vllm", "--base-url", "http://127.0.0.1:8001/v1", "--model", "m",
              "--api-key", "sk-secret", "--header", "X-Org=acme")  # fmt: skip
    engine = Engine.objects.get(name="vllm")
    assert out.strip() == f"engine_id={engine.pk}"
    assert engine.config == {
        "base_url": "http://127.0.0.1:8001/v1",
        "model": "m",
        "headers": {"X-Org": "acme"},
    }
    assert engine.secret == "sk-secret"
    assert "sk-secret" not in run("spool_engine", "list")


def test_engine_add_refuses_an_upstream_without_a_base_url():
    with pytest.raises(CommandError, match="base-url"):
        run("spool_engine", "add", "broken")


def test_engine_disable_hides_it():
    run("spool_engine", "add", "gone", "--kind", "offline")
    run("spool_engine", "disable", "gone")
    assert "(disabled)" in run("spool_engine", "list")


def test_key_command_prints_a_secret_that_matches_the_stored_hash():
    out = run("spool_key", "carol")
    lines = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    key = ApiKey.objects.get(access_key=lines["ACCESS_KEY"])
    assert key.owner.username == "carol" and key.secret_hash == hash_secret(lines["SECRET_KEY"])


def test_seeding_prints_a_line_per_batch_with_counts_and_rate():
    from jobs.models import StoredCompletion

    out = run("spool_seed_completions", "250", "--batch", "100", "--days", "3")
    lines = out.splitlines()
    assert StoredCompletion.objects.count() == 250
    assert [line.split(" rows")[0] for line in lines[:3]] == ["100/250", "200/250", "250/250"]
    assert all(" rows/s" in line and "(" in line for line in lines[:3])
    assert "left" in lines[0] and "left" not in lines[2]
    assert lines[-1] == "Generated 250 stored completions."


def _created(out: str) -> ApiKey:
    lines = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return ApiKey.objects.get(access_key=lines["ACCESS_KEY"])


def test_key_create_takes_an_expiry_engines_and_faces():
    engine = Engine.objects.create(name="limited-one", kind="offline")
    key = _created(run("spool_key", "create", "dora", "--expires", "12h", "--engine", "limited-one",
                       "--face", "openai", "--face", "native"))  # fmt: skip
    assert key.engines == [engine.pk] and key.faces == ["openai", "native"]
    left = key.expires_at - timezone.now()
    assert timedelta(hours=11, minutes=59) < left <= timedelta(hours=12)


def test_key_list_shows_each_keys_state_expiry_limits_and_last_use():
    Engine.objects.create(name="listed", kind="offline")
    live = _created(run("spool_key", "erin", "--name", "laptop", "--engine", "listed"))
    gone = _created(run("spool_key", "erin", "--name", "old"))
    run("spool_key", "revoke", gone.access_key)
    ApiKey.objects.filter(pk=live.pk).update(last_used_at=datetime(2026, 1, 2, 3, 4, tzinfo=UTC))
    rows = {line.split()[0]: line.split() for line in run("spool_key", "list", "--user", "erin").splitlines()}
    assert rows["ACCESS_KEY"][:3] == ["ACCESS_KEY", "OWNER", "STATE"]
    assert rows[live.access_key][1:] == [
        "erin",
        "active",
        "-",
        "2026-01-02",
        "03:04",
        "listed",
        "all",
        "interactive",
        "1",
        "laptop",
    ]
    assert rows[gone.access_key][2] == "revoked"
    assert len(rows) == 3


def test_key_revoke_and_set_expiry_change_the_row_and_say_so():
    key = _created(run("spool_key", "fay"))
    assert run("spool_key", "revoke", key.access_key).strip() == f"revoked {key.access_key}"
    first = ApiKey.objects.get(pk=key.pk).revoked_at
    assert "already revoked" in run("spool_key", "revoke", key.access_key)
    assert ApiKey.objects.get(pk=key.pk).revoked_at == first
    out = run("spool_key", "set-expiry", key.access_key, "2030-01-01T00:00:00")
    assert out.strip() == f"{key.access_key} expires 2030-01-01T00:00:00+00:00"
    assert ApiKey.objects.get(pk=key.pk).expires_at == datetime(2030, 1, 1, tzinfo=UTC)
    run("spool_key", "set-expiry", key.access_key, "never")
    assert ApiKey.objects.get(pk=key.pk).expires_at is None


def test_key_limit_sets_and_lifts_limits():
    engine = Engine.objects.create(name="only-this", kind="offline")
    key = _created(run("spool_key", "gus"))
    run("spool_key", "limit", key.access_key, "--engine", str(engine.pk), "--face", "semoss")
    key.refresh_from_db()
    assert key.engines == [engine.pk] and key.faces == ["semoss"]
    run("spool_key", "limit", key.access_key, "--all-faces")
    key.refresh_from_db()
    assert key.engines == [engine.pk] and key.faces == []
    run("spool_key", "limit", key.access_key, "--all-engines")
    key.refresh_from_db()
    assert key.engines == [] and key.faces == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("set-expiry", "spool-ak-nope", "1d"), "no key with access key"),
        (("limit", "{key}"), "nothing to change"),
        (("limit", "{key}", "--engine", "no-such-engine"), "no engine with id or name"),
        (("set-expiry", "{key}", "soon"), "not a time"),
    ],
)
def test_key_commands_refuse_what_they_cannot_do(args, message):
    key = _created(run("spool_key", "hal"))
    with pytest.raises(CommandError, match=message):
        run("spool_key", *(a.format(key=key.access_key) for a in args))
