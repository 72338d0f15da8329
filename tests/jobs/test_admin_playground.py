"""The playground page and the static files route, through Django's test client."""

from __future__ import annotations

import pytest
from django.test import Client

from jobs import services
from jobs.models import Engine

pytestmark = pytest.mark.django_db


@pytest.fixture
def person() -> Client:
    user = services.user_ensure(username="pat")
    user.set_password("open sesame")
    user.save()
    return Client()


def test_the_playground_sends_a_visitor_to_sign_in_first(person):
    response = person.get("/playground/")
    assert response.status_code == 302 and response["Location"] == "/playground/login/?next=/playground/"


def test_signing_in_leads_to_the_playground_which_lists_only_active_engines(person):
    Engine.objects.create(name="on-engine", kind="offline")
    Engine.objects.create(name="off-engine", kind="offline", is_active=False)
    response = person.post("/playground/login/", {"username": "pat", "password": "open sesame"})
    assert response.status_code == 302 and response["Location"] == "/playground/"
    page = person.get("/playground/").content.decode()
    assert "on-engine" in page and "off-engine" not in page
    assert 'data-semoss="/Monolith/api"' in page and "playground.js" in page


def test_a_wrong_password_is_told_not_swallowed(person):
    response = person.post("/playground/login/", {"username": "pat", "password": "nope"})
    assert response.status_code == 200 and "did not match" in response.content.decode()


def test_the_signed_in_session_is_accepted_by_the_semoss_face(person):
    person.login(username="pat", password="open sesame")
    body = person.post("/Monolith/api/engine/status", {"jobId": "not-a-job"}).json()
    assert body == {"status": "UnknownJob"}  # authenticated: an anonymous call is a 401
    assert Client().post("/Monolith/api/engine/status", {"jobId": "x"}).status_code == 401


@pytest.mark.parametrize("path", ["jobs/playground.js", "jobs/admin.css", "admin/css/base.css"])
def test_static_files_are_served_without_debug(client, path):
    response = client.get(f"/static/{path}")
    assert response.status_code == 200
    assert b"".join(response.streaming_content)
