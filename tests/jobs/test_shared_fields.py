"""SharedFields (jobs/faces/common/serializers.py): a serializer's fields built once for every
instance with the same fields_key, bound to a prototype that keeps no request of its own."""

from __future__ import annotations

import json

import pytest

from jobs import services
from jobs.faces.common.serializers import _shared_fields

pytestmark = pytest.mark.django_db


def test_the_shared_fields_keep_no_request_after_the_documents_and_creates(client, redis_clean):
    user = services.user_ensure(username="sharer")
    _, secret = services.key_create(owner=user)
    engine = services.engine_ensure_offline()
    bearer = {"Authorization": f"Bearer {secret}"}
    _shared_fields.clear()  # each serializer's fields are built anew from here on

    # The API documents build the create serializers' fields with a request in their context.
    assert client.get("/v1/openapi.json", headers=bearer).status_code == 200
    job = {"engine": engine.name, "command": "Speak.", "parameters": {"max_tokens": 2}}
    created = client.post("/v1/jobs", json.dumps(job), content_type="application/json", headers=bearer)
    assert created.status_code == 202
    chat = {"model": engine.name, "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 0}
    refused = client.post(
        "/v1/chat/completions", json.dumps(chat), content_type="application/json", headers=bearer
    )
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "max_completion_tokens"

    roots = {id(field.root): field.root for fields in _shared_fields.values() for field in fields.values()}
    assert len(roots) >= 4  # the documents' two creates, the chat face's and the generation parameters
    assert [root._context for root in roots.values() if "request" in root._context] == []
