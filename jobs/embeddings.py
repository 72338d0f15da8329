"""Runs an embedding request, for every face. Embeddings are answered in the request, not as a
job: nothing is stored, and there is nothing to poll.

embeddings_create is the one place an embedding request reaches an engine, so it is the one
place the scheduler (engine capacity, priority classes, fairness between tenants) wraps: a
burst of embeddings must take the same slots as generations and never overrun an upstream.
That is why it takes the owner and the face although it uses only the face today.
"""

from __future__ import annotations

from engine import embeddings as engines
from engine.embeddings import EmbeddingRequest, Embeddings
from engine.types import EngineError
from jobs import metrics
from jobs.models import Engine


async def embeddings_create(
    *, owner_id: int, engine: Engine, request: EmbeddingRequest, face: str
) -> Embeddings:
    """The engine's embeddings of the request's inputs, on the caller's event loop. Raises what
    engine.embeddings.embed raises: EmbeddingsUnsupported, UnsupportedParameter (InvalidInput
    for what no engine accepts), EngineError; each face renders them in its own shape."""
    try:
        result = await engines.embed(engine.built(), request)
    except EngineError as exc:
        metrics.embedding_answered(engine=engine.name, face=face, outcome=exc.code)
        raise
    metrics.embedding_answered(engine=engine.name, face=face, outcome="ok", inputs=len(request.inputs))
    return result
