"""What a face reads of a job: one frozen view, built from Redis while the job runs (its live
meta and the log's state, no Postgres) and from its row once it has ended or the meta is gone.
Faces render views, never rows: a view cannot be saved, and what it lacks while live (the
messages, the timings, the result) is None rather than a field that would load on access."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.types import ChunkDict
from jobs.models import Job
from jobs.types import LiveMeta


@dataclass(frozen=True, slots=True)
class EngineView:
    id: uuid.UUID
    name: str
    kind: str
    limited: bool  # its jobs go through its scheduler's queue (Engine.is_limited)


@dataclass(frozen=True, slots=True)
class JobView:
    id: uuid.UUID
    owner_id: int
    engine: EngineView
    room_id: uuid.UUID | None
    face: str
    request: dict[str, Any]  # while live: without its messages (they stay in Postgres)
    options: dict[str, Any]
    status: str
    created_at: datetime
    started_at: datetime | None = None
    first_chunk_at: datetime | None = None
    finished_at: datetime | None = None
    finish_reason: str = ""
    usage: dict[str, Any] | None = None
    error: str = ""
    result: dict[str, Any] | None = None
    chunks: list[ChunkDict] | None = None  # the archived log, once ended
    # Read from Redis: the job had not ended when it was read.
    live: bool = False
    # What job_start answered: the job an earlier request with the same idempotency key made.
    replayed: bool = False

    @property
    def pk(self) -> uuid.UUID:
        return self.id

    @property
    def engine_id(self) -> uuid.UUID:
        return self.engine.id

    @property
    def is_finished(self) -> bool:
        return self.status in Job.TERMINAL

    @classmethod
    def of(cls, job: Job, *, replayed: bool = False) -> JobView:
        """The view of a row (its engine loaded, no field deferred: each would be a query)."""
        engine = job.engine
        return cls(
            id=job.id,
            owner_id=job.owner_id,
            engine=EngineView(engine.id, engine.name, engine.kind, engine.is_limited),
            room_id=job.room_id,
            face=job.face,
            request=job.request,
            options=job.options,
            status=job.status,
            created_at=job.created_at,
            started_at=job.started_at,
            first_chunk_at=job.first_chunk_at,
            finished_at=job.finished_at,
            finish_reason=job.finish_reason,
            usage=job.usage,
            error=job.error,
            result=job.result,
            chunks=job.chunks,
            replayed=replayed,
        )

    @classmethod
    def from_live(cls, job_id: uuid.UUID, meta: LiveMeta, *, started: bool) -> JobView:
        """A job that has not ended, from its live meta. `started`: a worker took it (it wrote
        output, or its heartbeat is fresh); otherwise it waits in a queue."""
        engine = meta["engine"]
        return cls(
            id=job_id,
            owner_id=meta["owner"],
            engine=EngineView(
                uuid.UUID(engine["id"]), engine["name"], engine["kind"], engine.get("limited", False)
            ),
            room_id=uuid.UUID(meta["room"]) if meta["room"] else None,
            face=meta["face"],
            request=meta["request"],
            options=meta["options"],
            status=Job.Status.RUNNING if started else Job.Status.QUEUED,
            created_at=datetime.fromisoformat(meta["created"]),
            live=True,
        )


def live_meta(job: Job) -> LiveMeta:
    """What a job's creation writes to Redis, so that reading it while it is live touches Redis
    only (JobView.from_live reads it back)."""
    return {
        "owner": job.owner_id,
        "engine": {
            "id": str(job.engine.id),
            "name": job.engine.name,
            "kind": job.engine.kind,
            "limited": job.engine.is_limited,
        },
        "room": str(job.room_id) if job.room_id else None,
        "face": job.face,
        "created": job.created_at.isoformat(),
        # The messages stay in Postgres: no face renders them from a live job.
        "request": {k: v for k, v in job.request.items() if k != "messages"},
        # A response's input items stay in Postgres too (only GET .../input_items reads them).
        "options": {k: v for k, v in job.options.items() if k != "input"},
    }
