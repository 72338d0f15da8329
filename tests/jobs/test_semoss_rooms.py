"""An LLM call's room on the SEMOSS face: a call without a roomId gets a new room, whose history
is empty without asking Postgres; a call in an existing room is sent that room's history."""

from __future__ import annotations

import base64

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import services
from jobs.models import Engine, Job, RoomMessage
from tests.e2e.helpers import llm_pixel

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def basic(redis_clean) -> dict[str, str]:
    user = services.user_ensure(username="roomer")
    key, secret = services.key_create(owner=user)
    pair = base64.b64encode(f"{key.access_key}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


@pytest.fixture
def engine(db) -> Engine:
    return services.engine_ensure_offline()


def start(client, basic: dict[str, str], engine: Engine, command: str, **room: str) -> Job:
    expression = llm_pixel(str(engine.pk), command, {"max_completion_tokens": 2}, **room)
    response = client.post(
        "/Monolith/api/engine/runPixelAsync", {"expression": expression, "insightId": "new"}, headers=basic
    )
    assert response.status_code == 200, response.content
    return Job.objects.get(pk=response.json()["jobId"])


def test_a_call_without_a_room_reads_no_history(client, basic, engine):
    with CaptureQueriesContext(connection) as queries:
        job = start(client, basic, engine, "Speak.")
    assert job.room is not None
    assert job.request["messages"] == [{"role": "user", "content": "Speak."}]
    assert not [q["sql"] for q in queries if "jobs_roommessage" in q["sql"] and q["sql"].startswith("SELECT")]


def test_a_call_in_an_existing_room_is_sent_its_history(client, basic, engine):
    first = start(client, basic, engine, "Speak.")
    RoomMessage.objects.create(room=first.room, job=first, role="assistant", content="I speak.")
    second = start(client, basic, engine, "Again.", roomId=str(first.room_id))
    assert second.request["messages"] == [
        {"role": "user", "content": "Speak."},
        {"role": "assistant", "content": "I speak."},
        {"role": "user", "content": "Again."},
    ]
