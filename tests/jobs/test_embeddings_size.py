"""One embeddings answer holds at most SPOOL_EMBEDDINGS_MAX_VALUES numbers: refused before the
engine is asked when its width is known (the request's dimensions, the offline engine's own),
else once an upstream answered wider; and a request within the bound is answered."""

from __future__ import annotations

import asyncio
import uuid

import pytest

import fakeupstream
from engine.embeddings import EmbeddingRequest, InvalidInput
from jobs import services
from jobs.embeddings import embeddings_create

pytestmark = pytest.mark.django_db(transaction=True)


def _embed(engine, request: EmbeddingRequest):
    return asyncio.run(embeddings_create(owner_id=1, engine=engine, request=request, face="openai"))


@pytest.fixture
def offline(spool_env):
    spool_env(SPOOL_EMBEDDINGS_MAX_VALUES=64)
    return services.engine_ensure_offline()


def test_inputs_times_the_asked_width_over_the_bound_are_refused_naming_input(offline):
    with pytest.raises(InvalidInput) as refused:
        _embed(offline, EmbeddingRequest(inputs=["a", "b", "c"], dimensions=32))
    assert (refused.value.param, refused.value.code) == ("input", "too_many_values")
    assert "96 numbers (3 inputs of 32 dimensions)" in str(refused.value)


def test_one_input_too_wide_is_refused_naming_dimensions(offline):
    with pytest.raises(InvalidInput) as refused:
        _embed(offline, EmbeddingRequest(inputs=["a"], dimensions=65))
    assert refused.value.param == "dimensions"


def test_the_offline_engines_own_width_counts_when_none_is_asked(offline):
    # 1024 wide by default: one input is already past 64 numbers.
    with pytest.raises(InvalidInput):
        _embed(offline, EmbeddingRequest(inputs=["a"]))
    assert _embed(offline, EmbeddingRequest(inputs=["a", "b"], dimensions=32)).vectors.shape == (2, 32)


def test_an_upstream_that_answers_wider_than_the_bound_is_refused_after_it_answered(spool_env):
    spool_env(SPOOL_EMBEDDINGS_MAX_VALUES=20)
    with fakeupstream.running(port=0) as url:
        engine = services.engine_upsert(
            name=f"wide-{uuid.uuid4().hex[:6]}",
            kind="openai",
            config={"base_url": url, "model": "fake", "embedding_model": "fake?dims=8"},
        )
        assert _embed(engine, EmbeddingRequest(inputs=["a", "b"])).vectors.shape == (2, 8)
        with pytest.raises(InvalidInput) as refused:
            _embed(engine, EmbeddingRequest(inputs=["a", "b", "c"]))  # 24 numbers
    assert refused.value.code == "too_many_values"
