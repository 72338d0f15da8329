"""POST /v1/jobs/embeddings: embeddings in the native API's words (engine or model, parameters),
answered in the request: an embedding is not a job, so there is nothing to poll."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.request import Request

from jobs.access import engines_of
from jobs.faces.common.embeddings import checked_request, embed, json_answer, vectors_out
from jobs.faces.common.errors import refuse_unknown
from jobs.faces.common.schema import errors
from jobs.faces.common.serializers import check
from jobs.faces.common.views import caller
from jobs.faces.native import serializers as shapes
from jobs.faces.native.views import FACE, NativeView, engine_not_found, engine_ref, json_object

EXAMPLES = [
    OpenApiExample(
        "texts",
        summary="Two texts, 256 wide.",
        value={"engine": "spool-offline", "input": ["The king rode out.", "The queen stayed home."],
               "parameters": {"dimensions": 256}},
        request_only=True,
    ),
    OpenApiExample(
        "base64",
        summary="One text, as base64 float32s.",
        value={"model": "spool-offline", "input": "Speak.", "parameters": {"encoding_format": "base64"}},
        request_only=True,
    ),
]  # fmt: skip


class Embeddings(NativeView):
    @extend_schema(
        operation_id="createEmbeddings",
        summary="Embed texts (or token id arrays) with an engine; answered at once, not as a job.",
        request=shapes.EmbeddingsCreate,
        responses={200: shapes.EmbeddingsAnswer, **errors(404, 413, 502, 504)},
        examples=EXAMPLES,
    )
    async def post(self, request: Request) -> HttpResponse:
        body = json_object(self, request)
        refuse_unknown(body, shapes.EmbeddingsCreate().fields)
        if isinstance(body.get("parameters"), dict):
            refuse_unknown(body["parameters"], shapes.EmbeddingParameters().fields)
        field, ref = engine_ref(body)
        given = check(shapes.EmbeddingsCreate, body)
        wanted = checked_request(given["input"], given.get("parameters") or {})
        engine, result = await embed(
            owner_id=caller(request).pk, engines=engines_of(request.auth),
            ref=ref, wanted=wanted, face=FACE, param=field,
            unknown=lambda: engine_not_found(field, ref),
        )  # fmt: skip
        usage: dict[str, object] = {"input_tokens": result.input_tokens}
        if result.estimated:
            usage["estimated"] = True
        return json_answer(
            {
                "object": "embeddings",
                "engine": {"id": str(engine.pk), "name": engine.name},
                "embeddings": vectors_out(result.vectors, wanted.encoding_format),
                "dimensions": int(result.vectors.shape[1]),
                "usage": usage,
            }
        )
