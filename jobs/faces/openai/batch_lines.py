"""The endpoints a batch may name (settings.SPOOL.batches.endpoints), each through its own view's parsing
and rendering: a line is the request its endpoint would have received, its answer the JSON that
endpoint returns when it does not stream."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User

from jobs import responses as responses_protocol
from jobs.access import EngineNotAllowed
from jobs.batches.endpoints import LineRefused, LineRequest, LineWaiting
from jobs.faces.common.embeddings import embed, json_value
from jobs.faces.common.errors import FaceError
from jobs.faces.openai import embeddings, text
from jobs.faces.openai.chat import parse_create as parse_chat
from jobs.faces.openai.legacy import parse_text_create
from jobs.faces.openai.responses import create as responses_create
from jobs.faces.openai.responses import views as responses_views
from jobs.faces.openai.views import FACE, TEXT_FACE, model_not_found
from jobs.jobview import JobView
from jobs.placement import BATCH
from jobs.protocols import openai_chat
from jobs.responses.events import response_object
from jobs.scheduling.inline import Expired

NO_STREAM = FaceError(
    "The 'stream' parameter is not supported in a batch: each answer goes to the output file.",
    param="stream",
    code="unsupported_value",
)


@contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except FaceError as error:
        raise LineRefused(error.status, error.envelope()) from None


def _parsed(parse: Callable[[Any], Any], body: Any) -> Any:
    """The body as the endpoint's own parsing reads it; a streamed line is refused."""
    with _refusals():
        asked = parse(body)
        if asked.stream:
            raise NO_STREAM
    return asked


def _chat(owner: User, body: Any) -> LineRequest:
    asked = _parsed(parse_chat, body)
    return LineRequest(asked.model, asked.request, asked.options)


def _text(owner: User, body: Any) -> LineRequest:
    asked = _parsed(parse_text_create, body)
    return LineRequest(asked.model, asked.request, asked.options)


def _responses(owner: User, body: Any) -> LineRequest:
    """As the Responses view starts one, up to the job."""
    asked = _parsed(responses_create.parse_create, body)
    with _refusals():
        request, options = responses_views.request_of(owner, asked)
    return LineRequest(asked.model, request, options)


def _response(job: JobView) -> dict[str, Any]:
    return response_object(job, job.chunks or [])


@dataclass(frozen=True)
class Endpoint:
    face: str
    _parse: Callable[[User, Any], LineRequest]
    _render: Callable[[JobView], dict[str, Any]]

    def parse(self, owner: User, body: Any) -> LineRequest:
        return self._parse(owner, body)

    def render(self, job: JobView) -> dict[str, Any]:
        return self._render(job)


@dataclass(frozen=True)
class EmbeddingsEndpoint:
    """/v1/embeddings in a batch: each line answered by the batch's runner as the endpoint answers
    it, at class batch within the engine's limits (jobs.batches.endpoints.AnsweredEndpoint)."""

    face: str = FACE

    async def answer(self, owner: User, engines: frozenset[str], body: Any, wait: float) -> dict[str, Any]:
        try:
            with _refusals():
                model, wanted = embeddings.parse_create(body)
                engine, result = await embed(
                    owner_id=owner.pk, engines=engines, ref=model, wanted=wanted, face=self.face,
                    param="model", unknown=lambda: model_not_found(model),
                    priority=BATCH, queue_timeout=wait,
                )  # fmt: skip
        except EngineNotAllowed:
            raise LineRefused(404, model_not_found(model).envelope()) from None
        except Expired:
            raise LineWaiting from None
        return json_value(embeddings.embedding_list(engine, result, wanted.encoding_format))


CHAT = Endpoint(FACE, _chat, openai_chat.completion)
TEXT = Endpoint(TEXT_FACE, _text, text.text_completion)
RESPONSES = Endpoint(responses_protocol.FACE, _responses, _response)
EMBEDDINGS = EmbeddingsEndpoint()
