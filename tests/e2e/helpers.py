"""Small helpers for end-to-end tests: a raw SEMOSS HTTP client as the frontend uses it, and
direct database access for checking what Postgres kept."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from tests.servers import Spool, User

# The offline engine's end-of-text token is id 0: banning it makes a generation run to its
# max tokens (finish_reason "length") instead of ending wherever the model stops naturally.
NO_EOT = {"logit_bias": {"0": -100}}


def llm_pixel(engine_id: str, command: str, params: dict[str, Any] | None = None, **extra: str) -> str:
    """The LLM pixel exactly as ai-server-sdk builds it."""
    pixel = f'LLM(engine="{engine_id}", command="<encode>{command}</encode>"'
    if params is not None:
        pixel += f", paramValues=[{json.dumps(params, ensure_ascii=False)}]"
    for name, value in extra.items():
        pixel += f', {name}="<encode>{value}</encode>"'
    return pixel + ");"


class Frontend:
    """Posts forms to the SEMOSS face with Basic auth, as the SEMOSS frontend would."""

    def __init__(self, spool: Spool, user: User) -> None:
        self.http = httpx.Client(base_url=spool.semoss, auth=(user.access_key, user.secret_key), timeout=30)

    def post(self, path: str, **form: Any) -> dict[str, Any]:
        response = self.http.post(path, data=form)
        assert response.headers["content-type"].startswith("application/json"), response.text
        return response.json()

    def submit(self, engine_id: str, command: str, params: dict[str, Any] | None = None) -> str:
        body = self.post(
            "/engine/runPixelAsync", expression=llm_pixel(engine_id, command, params), insightId="new"
        )
        assert body.get("jobId"), body
        return body["jobId"]

    def stream(self, job_id: str, timeout: float = 60, **extra: Any) -> list[dict[str, Any]]:
        """Poll pixelJobStreaming until a finish_reason arrives; returns every poll's body."""
        polls: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.post("/engine/pixelJobStreaming", jobId=job_id, **extra)
            body["received_at"] = time.monotonic()
            polls.append(body)
            if any("finish_reason" in m["data"] for m in body["message"]):
                return polls
            if body["status"] == "UnknownJob":
                return polls
        raise AssertionError(f"no finish_reason within {timeout} s: {polls[-3:]}")


def messages_of(polls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for poll in polls for m in poll["message"]]


def text_of(messages: list[dict[str, Any]]) -> str:
    return "".join(m["data"].get("content", "") for m in messages if m["stream_type"] == "content")


def make_engine(name: str, **config: Any) -> str:
    from jobs import services

    return str(services.engine_upsert(name=name, kind="offline", config=config).pk)


def record_figures(spool: Spool, name: str, **figures: Any) -> None:
    """Keep what a fault or load test measured, for docs/RELIABILITY.md (artifacts/<name>.json)."""
    (spool.artifacts / f"{name}.json").write_text(json.dumps(figures, indent=2))


@dataclass
class BusyEngine:
    """An offline engine with one slot (max_concurrency=1), held by a long job of `user`'s until
    release(): a job sent to it waits in its queue. Used inside the `pg` fixture."""

    name: str
    holder: str  # the job on the slot
    http: httpx.Client  # /v1 with the user's key

    def waiting_job(self, timeout: float = 30) -> Any:
        """The first job that waits for the slot, once it exists."""
        from jobs.models import Job

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = Job.objects.filter(engine__name=self.name, status=Job.Status.QUEUED).first()
            if job is not None:
                return job
            time.sleep(0.05)
        raise AssertionError(f"no job waits on {self.name} after {timeout} s")

    def release_after_deadline_of(self, job: Any) -> None:
        """Free the slot once `job` is past its queue deadline: the slot's next taker finds it
        expired. (Waiting out its own deadline is all this sleeps for.)"""
        time.sleep(max(0.0, job.options["queue_deadline"] - time.time()) + 0.05)
        self.http.post(f"/jobs/{self.holder}/cancel")


def busy_engine(spool: Spool, user: User) -> BusyEngine:
    from jobs import services
    from jobs.models import Engine

    name = f"one-slot-{uuid.uuid4().hex[:8]}"
    engine = services.engine_upsert(name=name, kind="offline", config={"tokens_per_second": 20})
    Engine.objects.filter(pk=engine.pk).update(max_concurrency=1)
    http = httpx.Client(
        base_url=f"{spool.base_url}/v1", headers={"Authorization": f"Bearer {user.secret_key}"}, timeout=60
    )
    long_job = {"engine": name, "command": "Talk.", "parameters": {"max_tokens": 4000, **NO_EOT}}
    holder = http.post("/jobs", json=long_job).json()["id"]
    # Until it writes: it holds the slot from then until it is cancelled.
    page = http.get(f"/jobs/{holder}/chunks", params={"wait": 30}).json()
    assert page["chunks"], page
    return BusyEngine(name, holder, http)
