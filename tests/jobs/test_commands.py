"""Management commands: bootstrap, keys and engines."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

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


def test_bootstrap_registers_an_upstream_engine_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SPOOL_UPSTREAM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("SPOOL_UPSTREAM_MODEL", "llama")
    monkeypatch.setenv("SPOOL_UPSTREAM_API_KEY", "sk-upstream")
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
