"""What every face's embeddings endpoint shares: the request checked, the engine found and run
(through jobs.embeddings), its refusal or failure as a FaceError, the vectors as JSON numbers or
base64, and the answer written by orjson (2048 vectors of 1024 numbers are 2 million floats)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import orjson
from django.http import HttpResponse

from engine import embeddings as engines
from engine.embeddings import EmbeddingRequest, Embeddings, EmbeddingsUnsupported, Input, InvalidInput
from engine.types import EngineError, UnsupportedParameter
from jobs import services
from jobs.access import check_engine
from jobs.embeddings import embeddings_create
from jobs.faces.common.errors import FaceError, job_error
from jobs.models import Engine
from jobs.placement import INTERACTIVE
from jobs.scheduling import inline
from jobs.selectors import engine_find


def vectors_out(vectors: np.ndarray, encoding: str = "float") -> list[Any]:
    """Each row as numbers (float32 rows, which orjson writes as the shortest numbers that read
    back to the same float32), or as base64 of its little-endian float32 bytes (OpenAI's)."""
    if encoding == "base64":
        return [base64.b64encode(row.astype("<f4").tobytes()).decode("ascii") for row in vectors]
    return list(np.ascontiguousarray(vectors, dtype=np.float32))


def json_answer(body: dict[str, Any]) -> HttpResponse:
    return HttpResponse(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), content_type="application/json"
    )


def json_value(body: dict[str, Any]) -> dict[str, Any]:
    """The body as plain JSON values (to be stored), each number the one json_answer writes."""
    value: dict[str, Any] = orjson.loads(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY))
    return value


def embedding_error(exc: EngineError, *, engine: Engine | None = None, param: str = "model") -> FaceError:
    """The face error for what embeddings_create (or engine.embeddings.check) raised; `param`
    names the field that chose the engine, for an engine that cannot embed."""
    if isinstance(exc, InvalidInput) or engine is None:
        return FaceError(str(exc), param=getattr(exc, "param", None), code=exc.code)
    if isinstance(exc, EmbeddingsUnsupported):
        return FaceError(
            f"Engine '{engine.name}' does not support embeddings. {exc}", param=param, code=exc.code
        )
    if isinstance(exc, UnsupportedParameter):
        return FaceError(services.refusal(engine, exc), param=exc.param, code="unsupported_parameter")
    return job_error({"code": exc.code, "message": str(exc)})


def checked_request(inputs: list[Input], options: Mapping[str, Any]) -> EmbeddingRequest:
    """The request from a face's checked fields (dimensions, user, encoding_format), refused as a
    FaceError before any engine is looked up when no engine would take it: OpenAI checks the
    body first."""
    wanted = EmbeddingRequest(
        inputs=inputs,
        dimensions=options.get("dimensions"),
        user=options.get("user"),
        encoding_format=options.get("encoding_format", "float"),
    )
    try:
        engines.check(wanted)
    except EngineError as exc:
        raise embedding_error(exc) from None
    return wanted


async def embed(
    *,
    owner_id: int,
    engines: frozenset[str],
    ref: str,
    wanted: EmbeddingRequest,
    face: str,
    param: str,
    unknown: Callable[[], FaceError],
    priority: str = INTERACTIVE,
    queue_timeout: float | None = None,
) -> tuple[Engine, Embeddings]:
    """The engine `ref` names (else unknown()) and its embeddings; a refusal or failure is a
    FaceError whose `param` names the field that chose the engine. Raises EngineNotAllowed (403
    in each face's shape) when `engines`, the calling key's, leaves the engine out. A caller
    that gives its own `queue_timeout` (a batch line) gets inline.Expired when no slot of a
    limited engine came within it, to try again later."""
    engine = await engine_find(ref)
    if engine is None:
        raise unknown()
    check_engine(engines, engine)
    try:
        result = await embeddings_create(
            owner_id=owner_id, engine=engine, request=wanted, face=face,
            priority=priority, queue_timeout=queue_timeout,
        )  # fmt: skip
    except EngineError as exc:
        if isinstance(exc, inline.Expired) and queue_timeout is not None:
            raise
        raise embedding_error(exc, engine=engine, param=param) from None
    return engine, result
