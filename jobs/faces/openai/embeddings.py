"""POST /v1/embeddings: OpenAI's embeddings endpoint, answered in the request (not a job)."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.request import Request

from engine.embeddings import EmbeddingRequest
from engine.embeddings import Embeddings as EmbeddingsResult
from jobs.access import engines_of
from jobs.faces.common.embeddings import checked_request, embed, json_answer, vectors_out
from jobs.faces.common.errors import FaceError, refuse_unknown
from jobs.faces.common.schema import errors
from jobs.faces.common.serializers import check
from jobs.faces.common.views import caller
from jobs.faces.openai import serializers as shapes
from jobs.faces.openai.base import OpenAIView
from jobs.faces.openai.views import OFFLINE, model_not_found
from jobs.models import Engine

FACE = "openai"
EXAMPLES = [
    OpenApiExample(
        "texts",
        summary="Two texts, as numbers.",
        value={"model": OFFLINE, "input": ["The king rode out.", "The queen stayed home."]},
        request_only=True,
    ),
    OpenApiExample(
        "narrow",
        summary="One text, 64 wide, as base64 float32s.",
        value={
            "model": OFFLINE,
            "input": "Tell me of the king.",
            "dimensions": 64,
            "encoding_format": "base64",
        },
        request_only=True,
    ),
    OpenApiExample(
        "tokens",
        summary="Texts given as the engine's token ids.",
        value={"model": OFFLINE, "input": [[1, 2, 3], [4, 5]], "user": "user-1"},
        request_only=True,
    ),
]


def parse_create(body: Any) -> tuple[str, EmbeddingRequest]:
    """(the model, the request) from a createEmbedding body, refused as a FaceError as OpenAI
    refuses it."""
    if not isinstance(body, dict):
        raise FaceError("The request body must be a JSON object.", code="invalid_type")
    refuse_unknown(body, shapes.EmbeddingCreate().fields)
    given = check(shapes.EmbeddingCreate, body)
    return given["model"], checked_request(given["input"], given)


def embedding_list(engine: Engine, result: EmbeddingsResult, encoding: str) -> dict[str, Any]:
    """OpenAI's answer: a list of embeddings (vectors as numpy rows or base64: json_answer and
    json_value write them)."""
    data = [
        {"object": "embedding", "index": i, "embedding": vector}
        for i, vector in enumerate(vectors_out(result.vectors, encoding))
    ]
    usage = {"prompt_tokens": result.input_tokens, "total_tokens": result.input_tokens}
    return {"object": "list", "data": data, "model": engine.name, "usage": usage}


class Embeddings(OpenAIView):
    @extend_schema(
        operation_id="createEmbedding",
        summary="Embed one or more texts (or token arrays); answered at once, not as a job.",
        request=shapes.EmbeddingCreate,
        responses={200: shapes.EmbeddingList, **errors(404, 413, 502, 504)},
        examples=EXAMPLES,
    )
    async def post(self, request: Request) -> HttpResponse:
        model, wanted = parse_create(self.json_body(request))
        engine, result = await embed(
            owner_id=caller(request).pk, engines=engines_of(request.auth),
            ref=model, wanted=wanted, face=FACE, param="model",
            unknown=lambda: model_not_found(model),
        )  # fmt: skip
        return json_answer(embedding_list(engine, result, wanted.encoding_format))
