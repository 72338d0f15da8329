"""Runs an embedding request, for every face. Embeddings are answered in the request, not as a
job: nothing is stored, and there is nothing to poll.

embeddings_create is the one place an embedding request reaches an engine, so it is where the
scheduler wraps it: on a limited engine the request waits for one of the engine's slots, at the
interactive class (a Batch API line: batch) and its owner's share (jobs/scheduling/inline.py),
so a burst of embeddings takes turns with generations and never overruns an upstream. It is
also where an answer's size is bounded (SPOOL_EMBEDDINGS_MAX_VALUES numbers), before the engine
is asked when the width is known, else when the engine answered wider than the bound.
"""

from __future__ import annotations

from django.conf import settings

from engine import embeddings as engines
from engine.embeddings import EmbeddingRequest, Embeddings, InvalidInput
from engine.types import EngineError
from jobs import metrics
from jobs.models import Engine
from jobs.placement import INTERACTIVE
from jobs.scheduling import inline
from jobs.scheduling.estimate import CHARS_PER_TOKEN


async def embeddings_create(
    *,
    owner_id: int,
    engine: Engine,
    request: EmbeddingRequest,
    face: str,
    priority: str = INTERACTIVE,
    queue_timeout: float | None = None,
) -> Embeddings:
    """The engine's embeddings of the request's inputs, on the caller's event loop. Raises what
    engine.embeddings.embed raises: EmbeddingsUnsupported, UnsupportedParameter (InvalidInput
    for what no engine accepts), EngineError; each face renders them in its own shape."""
    built = engine.built()
    try:
        _check_size(len(request.inputs), request.dimensions or getattr(built, "embedding_dimensions", None))
        tokens = _tokens(request)
        async with inline.slot(
            engine, owner_id=owner_id, tokens=tokens, priority=priority, timeout=queue_timeout
        ):
            result = await engines.embed(built, request)
        _check_size(*result.vectors.shape)
    except EngineError as exc:
        metrics.embedding_answered(engine=engine.name, face=face, outcome=exc.code)
        raise
    metrics.embedding_answered(engine=engine.name, face=face, outcome="ok", inputs=len(request.inputs))
    return result


def _tokens(request: EmbeddingRequest) -> int:
    """The inputs' tokens as the engine's tokens-per-minute limit counts them."""
    return sum(len(i) if isinstance(i, list) else len(i) // CHARS_PER_TOKEN + 1 for i in request.inputs)


def _check_size(inputs: int, width: int | None) -> None:
    """Refuses an answer of more than SPOOL_EMBEDDINGS_MAX_VALUES numbers (inputs × width)."""
    most = settings.SPOOL.limits.embeddings_max_values
    if width is None or inputs * width <= most:
        return
    raise InvalidInput(
        "input" if inputs > 1 else "dimensions",
        f"This answer would hold {inputs * width:,} numbers ({inputs} inputs of {width} dimensions); "
        f"at most {most:,} are answered per request: send fewer inputs or ask for fewer dimensions.",
        "too_many_values",
    )
