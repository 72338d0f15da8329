"""Runs an embedding request, for every face. Embeddings are answered in the request, not as a
job: nothing is stored, and there is nothing to poll.

embeddings_create is the one place an embedding request reaches an engine, so it is where the
scheduler wraps it: on a limited engine the request waits for one of the engine's slots, at the
interactive class and its owner's share (jobs/scheduling/inline.py), so a burst of embeddings
takes turns with generations and never overruns an upstream.
"""

from __future__ import annotations

from engine import embeddings as engines
from engine.embeddings import EmbeddingRequest, Embeddings
from engine.types import EngineError
from jobs import metrics
from jobs.models import Engine
from jobs.scheduling import inline
from jobs.scheduling.estimate import CHARS_PER_TOKEN


async def embeddings_create(
    *, owner_id: int, engine: Engine, request: EmbeddingRequest, face: str
) -> Embeddings:
    """The engine's embeddings of the request's inputs, on the caller's event loop. Raises what
    engine.embeddings.embed raises: EmbeddingsUnsupported, UnsupportedParameter (InvalidInput
    for what no engine accepts), EngineError; each face renders them in its own shape."""
    try:
        async with inline.slot(engine, owner_id=owner_id, tokens=_tokens(request)):
            result = await engines.embed(engine.built(), request)
    except EngineError as exc:
        metrics.embedding_answered(engine=engine.name, face=face, outcome=exc.code)
        raise
    metrics.embedding_answered(engine=engine.name, face=face, outcome="ok", inputs=len(request.inputs))
    return result


def _tokens(request: EmbeddingRequest) -> int:
    """The inputs' tokens as the engine's tokens-per-minute limit counts them."""
    return sum(len(i) if isinstance(i, list) else len(i) // CHARS_PER_TOKEN + 1 for i in request.inputs)
