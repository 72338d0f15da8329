"""Engines and API keys in the admin: secrets are written, and never shown back."""

from __future__ import annotations

import re

import pytest

from jobs import services
from jobs.keys import hash_secret
from jobs.models import ApiKey, Engine
from tests.support import NO_DEPLOYMENTS

pytestmark = pytest.mark.django_db

SECRET = "sk-upstream-do-not-show-7f3a9c"


def test_an_engines_secret_is_never_shown_back_and_a_blank_one_keeps_it(admin_client):
    engine = services.engine_upsert(
        name="openai", kind="openai", config={"base_url": "https://x.invalid/v1", "model": "m"}, secret=SECRET
    )
    change = f"/admin/jobs/engine/{engine.pk}/change/"
    for url in ("/admin/jobs/engine/", change):
        assert SECRET not in admin_client.get(url).content.decode()
    form = admin_client.get(change).content.decode()
    assert re.search(r'<input type="password" name="secret"[^>]*>', form)

    response = admin_client.post(change, {
        "name": "openai", "kind": "openai", "config": '{"base_url": "https://y.invalid/v1", "model": "m"}',
        "secret": "", "is_active": "on", **NO_DEPLOYMENTS,
    })  # fmt: skip
    assert response.status_code == 302
    engine.refresh_from_db()
    assert engine.secret == SECRET and engine.config["base_url"] == "https://y.invalid/v1"


def test_an_api_key_secret_is_shown_once_at_creation_and_never_again(admin_client):
    owner = services.user_ensure(username="ann")
    form = {"owner": owner.pk, "name": "ci", "max_priority": "interactive", "weight": "1"}
    created = admin_client.post("/admin/jobs/apikey/add/", form)
    assert created.status_code == 200
    page = created.content.decode()
    secret = re.search(r'id="spool-secret-key">([^<]+)<', page).group(1)
    key = ApiKey.objects.get(owner=owner)
    assert key.secret_hash == hash_secret(secret) and key.name == "ci"
    assert created.cookies.get("messages") is None  # not parked in a cookie for a later page

    for url in ("/admin/jobs/apikey/", f"/admin/jobs/apikey/{key.pk}/change/"):
        body = admin_client.get(url).content.decode()
        assert secret not in body and key.secret_hash not in body
        assert key.access_key in body


def test_the_revoke_action_revokes_keys(admin_client):
    key, _ = services.key_create(owner=services.user_ensure(username="ann"))
    admin_client.post("/admin/jobs/apikey/", {"action": "revoke", "index": "0", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_engines_are_managed_in_the_admin(admin_client):
    form = {"name": "local", "kind": "offline", "config": '{"tokens_per_second": 10}', "is_active": "on"}
    response = admin_client.post("/admin/jobs/engine/add/", {**form, "secret": "", **NO_DEPLOYMENTS})
    assert response.status_code == 302
    assert Engine.objects.get(name="local").config == {"tokens_per_second": 10}


def test_a_keys_expiry_engines_and_faces_are_shown_and_edited_in_the_admin(admin_client):
    from datetime import timedelta

    from django.utils import timezone

    kept = Engine.objects.create(name="kept-engine", kind="offline")
    gone = Engine.objects.create(name="gone-engine", kind="offline")
    key, _ = services.key_create(owner=services.user_ensure(username="ann"), engines=[str(gone.pk)])
    gone_id = gone.pk
    gone.delete()
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now() - timedelta(minutes=5))
    listing = admin_client.get("/admin/jobs/apikey/").content.decode()
    assert f"{gone_id} (deleted)" in listing and "active" in listing

    change = f"/admin/jobs/apikey/{key.pk}/change/"
    page = admin_client.get(change).content.decode()
    assert 'name="faces" value="semoss"' in page and "kept-engine" in page
    response = admin_client.post(change, {
        "name": "ci", "expires_at_0": "2030-01-01", "expires_at_1": "00:00:00",
        "engines": [str(kept.pk)], "faces": ["openai", "native"], "max_priority": "interactive",
        "weight": "1",
    })  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    key.refresh_from_db()
    # The deleted engine's id stays: the key never widens to every engine by accident.
    assert key.engines == [kept.pk, gone_id] and key.faces == ["openai", "native"]
    assert key.expires_at.year == 2030 and key.revoked_at is None and key.last_used_at is not None
    assert "expired" not in admin_client.get("/admin/jobs/apikey/").content.decode()
