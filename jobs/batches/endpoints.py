"""What the core asks of the face behind each endpoint a batch may name. A generation endpoint
turns a line's body into a request as its own view does, and renders the line's finished job as
that view answers. An endpoint answered within the request (embeddings) answers a line itself:
the batch's runner calls it at class batch and keeps the answer on the line; there is no job.
The faces provide them (settings.SPOOL.batches.endpoints names each), so the core imports no face."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol, runtime_checkable

from django.conf import settings
from django.contrib.auth.models import User
from django.utils.module_loading import import_string

from engine.types import GenerationRequest
from jobs.jobview import JobView


class LineRefused(Exception):
    """A line the endpoint refused: the status and body its view would have answered."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body)
        self.status = status
        self.body = body


@dataclass(frozen=True, slots=True)
class LineRequest:
    model: str
    request: GenerationRequest
    options: dict[str, Any]


class Endpoint(Protocol):
    face: str  # the job's face, as the endpoint's view creates it

    def parse(self, owner: User, body: Any) -> LineRequest:
        """Raises LineRefused for a body the endpoint refuses."""
        ...

    def render(self, job: JobView) -> dict[str, Any]:
        """The JSON the endpoint answers for this succeeded job."""
        ...


class LineWaiting(Exception):
    """No slot of the line's engine came within the wait it was given: the line is answered at a
    later step of the batch."""


@runtime_checkable
class AnsweredEndpoint(Protocol):
    face: str

    async def answer(self, owner: User, engines: frozenset[str], body: Any, wait: float) -> dict[str, Any]:
        """The JSON the endpoint answers for this line, waiting at most `wait` seconds for a slot
        of a limited engine (then LineWaiting); LineRefused for what it refuses or what failed."""
        ...


def urls() -> list[str]:
    return list(settings.SPOOL.batches.endpoints)


@cache
def _load(path: str) -> Endpoint | AnsweredEndpoint:
    endpoint: Endpoint | AnsweredEndpoint = import_string(path)
    return endpoint


def endpoint_for(url: str) -> Endpoint | AnsweredEndpoint | None:
    path = settings.SPOOL.batches.endpoints.get(url)
    return None if path is None else _load(path)
