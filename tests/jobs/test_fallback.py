"""An engine's fallback takes the jobs the engine failed before their first chunk, once each."""

from __future__ import annotations

import uuid

import pytest

from engine.types import GenerationRequest
from harness.processes import free_port
from jobs import queueing, services
from jobs.models import Engine, Job
from jobs.placement import Placement
from jobs.worker.runner import job_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sent(monkeypatch, redis_clean) -> list[str]:
    out: list[str] = []
    monkeypatch.setattr(queueing, "send_job", out.append)
    return out


def unreachable(name: str) -> Engine:
    """An upstream engine whose server refuses connections, with no retries to wait through."""
    config = {"base_url": f"http://127.0.0.1:{free_port()}/v1", "model": "m", "max_retries": 0}
    return services.engine_upsert(name=f"{name}-{uuid.uuid4().hex[:6]}", kind="openai", config=config)


def start(engine: Engine) -> Job:
    return services.job_create(
        owner=services.user_ensure(username="falling"),
        engine=engine,
        request=GenerationRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=3),
        options={},
        face="native",
        placement=Placement(),
    )


def test_a_job_its_engine_failed_before_the_first_chunk_runs_on_the_fallback(sent):
    down = unreachable("down")
    down.fallback = services.engine_ensure_offline()
    down.save()
    job = start(down)
    job_run(job_id=str(job.pk))
    job.refresh_from_db()
    assert (job.status, job.engine_id) == (Job.Status.QUEUED, down.fallback.pk)  # moved, waiting
    assert sent == [str(job.pk), str(job.pk)]  # sent once on creation, once to the fallback
    job_run(job_id=str(job.pk))
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and job.options["engines_tried"] == [str(down.pk)]


def test_a_ring_of_fallbacks_ends_with_the_failure(sent):
    first, second = unreachable("first"), unreachable("second")
    first.fallback, second.fallback = second, first
    first.save()
    second.save()
    job = start(first)
    job_run(job_id=str(job.pk))
    job_run(job_id=str(job.pk))  # on the second: its fallback (the first) was tried already
    job.refresh_from_db()
    assert (job.status, job.finish_reason, job.engine_id) == (Job.Status.FAILED, "upstream_error", second.pk)
