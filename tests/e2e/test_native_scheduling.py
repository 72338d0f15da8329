"""The native face on an engine with one slot, against a running Spool and worker: a job that
waits for it says where it waits, and one that waits past its queue timeout fails expired."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import busy_engine

pytestmark = pytest.mark.e2e


def test_a_job_waiting_for_a_busy_engine_says_where_it_waits_then_expires(spool, pg):
    from jobs.models import Job

    busy = busy_engine(spool, spool.alice)
    body = {"engine": busy.name, "command": "Hello.", "priority": "batch", "queue_timeout": 1}
    waiting = busy.http.post("/jobs", json=body).json()
    assert waiting["status"] == "queued" and waiting["priority"] == "batch"
    assert waiting["queue"] == {"priority": "batch", "state": "waiting", "reason": "engine_full", "ahead": 0}
    holder = busy.http.get(f"/jobs/{busy.holder}").json()
    assert holder["status"] == "running" and "queue" not in holder  # running: not waiting any more

    busy.release_after_deadline_of(Job.objects.get(pk=waiting["id"]))
    ended = busy.http.get(f"/jobs/{waiting['id']}", params={"wait": 30}).json()
    assert (ended["status"], ended["finish_reason"], ended["error"]["code"]) == (
        "failed",
        "expired",
        "expired",
    )
    assert ended["started_at"] is None and "queue" not in ended  # it never started
