"""Embeddings in the engines: the offline engine's hashed vectors, the upstream engine against the
fake OpenAI-compatible server (timeouts, retries, error codes, both encodings), and the checks and
refusal every engine shares."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import fakeupstream
from engine import upstream
from engine.embeddings import (
    MAX_INPUTS,
    EmbeddingRequest,
    Embeddings,
    EmbeddingsUnsupported,
    check,
    embed,
)
from engine.offline import OfflineEngine
from engine.offline.embedding import embed_text
from engine.offline.engine import LONG_INPUT
from engine.offline.tokenizer import default_tokenizer
from engine.types import EngineError, UnsupportedParameter
from engine.upstream import UpstreamEngine
from fakeupstream.scenarios import embedding
from tests.engine.test_upstream import keyed, make, run

DOCS = [
    "The king rode out to battle with his army at dawn.",
    "Bake the bread in a hot oven for forty minutes.",
    "The stock market fell sharply on Monday morning.",
    "Our cat likes to sleep in the sun all afternoon.",
]


def offline(request: EmbeddingRequest, **config: Any) -> Embeddings:
    return asyncio.run(embed(OfflineEngine(config), request))


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with fakeupstream.running(port=0) as url:
        yield url


# -- the offline engine --------------------------------------------------------------------------


def test_offline_vectors_are_unit_length_float32_one_row_per_input_in_order() -> None:
    out = offline(EmbeddingRequest(inputs=DOCS))
    assert out.vectors.shape == (4, 1024) and out.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(out.vectors, axis=1), 1.0, atol=1e-5)
    alone = offline(EmbeddingRequest(inputs=[DOCS[2]]))
    assert np.array_equal(alone.vectors[0], out.vectors[2])
    assert out.input_tokens == sum(default_tokenizer().count_tokens(d) for d in DOCS)
    assert not out.estimated


def test_offline_vectors_are_the_same_from_another_engine_object() -> None:
    first = offline(EmbeddingRequest(inputs=["a shared text"]))
    again = asyncio.run(
        embed(OfflineEngine({"tokens_per_second": 5}), EmbeddingRequest(inputs=["a shared text"]))
    )
    assert np.array_equal(first.vectors, again.vectors)


def test_the_width_comes_from_the_request_else_the_engine_config() -> None:
    assert offline(EmbeddingRequest(inputs=["x"]), embedding_dimensions=64).vectors.shape == (1, 64)
    assert offline(EmbeddingRequest(inputs=["x"], dimensions=3), embedding_dimensions=64).vectors.shape == (
        1,
        3,
    )


@pytest.mark.parametrize(
    ("query", "nearest"),
    [
        ("When did the kings ride to battle?", 0),
        ("how long to bake bread in the oven", 1),
        ("stock markets fell", 2),
        ("a sleepy cat in the afternoon sun", 3),
    ],
)
def test_a_query_is_nearest_to_the_text_it_shares_words_and_word_parts_with(query: str, nearest: int) -> None:
    out = offline(EmbeddingRequest(inputs=[*DOCS, query]))
    similarity = out.vectors[:4] @ out.vectors[4]
    assert int(np.argmax(similarity)) == nearest, similarity


def test_a_word_and_its_inflection_are_nearer_than_unrelated_words() -> None:
    v = offline(EmbeddingRequest(inputs=["kingdoms", "kingdom", "pancake"])).vectors
    assert float(v[0] @ v[1]) > 0.25 > abs(float(v[0] @ v[2]))


def test_a_long_input_embedded_off_the_loop_is_the_same_vector_as_a_short_one_would_be() -> None:
    long_text = " ".join(DOCS) * (LONG_INPUT // len(" ".join(DOCS)) + 1)
    assert len(long_text) > LONG_INPUT
    out = offline(EmbeddingRequest(inputs=[long_text, DOCS[0]]))
    assert np.array_equal(out.vectors[0], embed_text(long_text, 1024))
    assert np.array_equal(out.vectors[1], embed_text(DOCS[0], 1024))
    assert out.input_tokens == default_tokenizer().count_tokens(long_text) + default_tokenizer().count_tokens(
        DOCS[0]
    )


def test_token_arrays_embed_as_the_text_they_decode_to_and_count_as_their_length() -> None:
    tok = default_tokenizer()
    ids = tok.encode(DOCS[0])
    out = offline(EmbeddingRequest(inputs=[ids, DOCS[0]]))
    assert np.array_equal(out.vectors[0], out.vectors[1])
    assert out.input_tokens == 2 * len(ids)


def test_a_token_id_outside_the_offline_vocabulary_is_refused_naming_the_input() -> None:
    with pytest.raises(UnsupportedParameter) as caught:
        offline(EmbeddingRequest(inputs=["fine", [1, default_tokenizer().vocab_size]]))
    assert caught.value.param == "input[1]"


@pytest.mark.parametrize(
    ("request_", "param"),
    [
        (EmbeddingRequest(inputs=[]), "input"),
        (EmbeddingRequest(inputs=["x"] * (MAX_INPUTS + 1)), "input"),
        (EmbeddingRequest(inputs=["x", ""]), "input[1]"),
        (EmbeddingRequest(inputs=[[]]), "input[0]"),
        (EmbeddingRequest(inputs=[[1, -2]]), "input[0]"),
        (EmbeddingRequest(inputs=["x"], dimensions=0), "dimensions"),
        (EmbeddingRequest(inputs=["x"], encoding_format="hex"), "encoding_format"),
    ],
)
def test_what_no_engine_accepts_is_refused_naming_the_parameter(
    request_: EmbeddingRequest, param: str
) -> None:
    with pytest.raises(UnsupportedParameter) as caught:
        check(request_)
    assert caught.value.param == param


def test_the_most_inputs_allowed_are_accepted() -> None:
    check(EmbeddingRequest(inputs=["x"] * MAX_INPUTS))


def test_an_engine_without_embed_is_refused_with_a_typed_error() -> None:
    class ChatOnly:
        pass

    with pytest.raises(EmbeddingsUnsupported) as caught:
        asyncio.run(embed(ChatOnly(), EmbeddingRequest(inputs=["x"])))
    assert caught.value.code == "embeddings_unsupported"


# -- the upstream engine -------------------------------------------------------------------------


def embed_upstream(engine: UpstreamEngine, request: EmbeddingRequest) -> Embeddings:
    return run(embed(engine, request))


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_upstream_vectors_are_what_the_server_sent_in_either_encoding(base_url: str, encoding: str) -> None:
    model, key = keyed("fake?dims=5")
    out = embed_upstream(
        make(base_url, "chat-model", embedding_model=model),
        EmbeddingRequest(inputs=["one", [5, 6, 7]], dimensions=12, user="u-1", encoding_format=encoding),
    )
    assert out.vectors.dtype == np.float32
    assert out.vectors.tolist() == [embedding("one", 12), embedding([5, 6, 7], 12)]
    assert out.input_tokens == 1 + 3 and not out.estimated  # the fake's own count, passed through
    (record,) = fakeupstream.recorded(base_url, key)
    assert record["path"] == "/v1/embeddings"
    sent = {"model": model, "input": ["one", [5, 6, 7]], "dimensions": 12, "user": "u-1"}
    if encoding == "base64":
        sent["encoding_format"] = "base64"
    assert record["body"] == sent


def test_upstream_embeddings_use_the_chat_model_when_no_embedding_model_is_set(base_url: str) -> None:
    model, key = keyed("fake?dims=4")
    out = embed_upstream(make(base_url, model), EmbeddingRequest(inputs=["x"]))
    assert out.vectors.shape == (1, 4)
    assert fakeupstream.recorded(base_url, key)[0]["body"]["model"] == model


def test_without_usage_from_the_server_the_tokens_are_estimated(base_url: str) -> None:
    model, _ = keyed("fake?usage=0")
    out = embed_upstream(make(base_url, model), EmbeddingRequest(inputs=["three small words"]))
    assert out.estimated and out.input_tokens == 3


def test_upstream_embeddings_are_retried_after_503_as_generations_are(base_url: str) -> None:
    heard: list[str] = []
    upstream.on_retry(lambda code, retry_after: heard.append(code))
    try:
        model, key = keyed("fake?fail=503&fail_times=2")
        out = embed_upstream(make(base_url, model), EmbeddingRequest(inputs=["x"]))
    finally:
        upstream.on_retry(None)
    assert out.vectors.shape == (1, 8)
    assert heard == ["503", "503"]
    assert [r["attempt"] for r in fakeupstream.recorded(base_url, key)] == [1, 2, 3]


def test_an_upstream_that_keeps_failing_ends_in_upstream_error_after_the_retries(base_url: str) -> None:
    model, key = keyed("fake?fail=500")
    with pytest.raises(EngineError) as caught:
        embed_upstream(make(base_url, model, max_retries=1), EmbeddingRequest(inputs=["x"]))
    assert caught.value.code == "upstream_error" and "after 2 attempts" in str(caught.value)
    assert len(fakeupstream.recorded(base_url, key)) == 2


def test_a_400_from_the_upstream_is_not_retried_and_carries_its_message(base_url: str) -> None:
    model, key = keyed("fake?fail=400&message=bad+dimensions")
    with pytest.raises(EngineError) as caught:
        embed_upstream(make(base_url, model), EmbeddingRequest(inputs=["x"]))
    assert caught.value.code == "upstream_error" and "bad dimensions" in str(caught.value)
    assert len(fakeupstream.recorded(base_url, key)) == 1


def test_an_upstream_silent_past_the_read_timeout_is_upstream_timeout_not_retried(base_url: str) -> None:
    model, key = keyed("fake?ttfb=2")
    with pytest.raises(EngineError) as caught:
        embed_upstream(make(base_url, model, read_timeout=0.3), EmbeddingRequest(inputs=["x"]))
    assert caught.value.code == "upstream_timeout"
    assert len(fakeupstream.recorded(base_url, key)) == 1


def test_a_connection_dropped_before_the_answer_is_retried(base_url: str) -> None:
    model, key = keyed("fake?drop_after=0&fail_times=1")
    out = embed_upstream(make(base_url, model), EmbeddingRequest(inputs=["x"]))
    assert out.vectors.shape == (1, 8)
    assert len(fakeupstream.recorded(base_url, key)) == 2


def test_an_upstream_configured_without_embeddings_is_refused_before_any_request(base_url: str) -> None:
    model, key = keyed("fake")
    with pytest.raises(EmbeddingsUnsupported):
        embed_upstream(make(base_url, model, embeddings=False), EmbeddingRequest(inputs=["x"]))
    assert fakeupstream.recorded(base_url, key) == []


@pytest.mark.parametrize(
    "answer",
    [
        {"data": []},
        {"data": [{"index": 0, "embedding": "not base64!"}]},
        {"data": [{"index": 3, "embedding": [0.1]}]},
        {"data": [{"index": 0, "embedding": [0.1, "x"]}]},
    ],
)
def test_an_answer_that_is_not_one_embedding_per_input_is_an_upstream_error(answer: dict[str, Any]) -> None:
    with pytest.raises(EngineError) as caught:
        UpstreamEngine._embeddings(answer, EmbeddingRequest(inputs=["x"]))
    assert caught.value.code == "upstream_error"


def test_rows_answered_out_of_order_are_put_back_in_input_order() -> None:
    answer = {"data": [{"index": 1, "embedding": [2.0]}, {"index": 0, "embedding": [1.0]}]}
    out = UpstreamEngine._embeddings(answer, EmbeddingRequest(inputs=["a", "b"]))
    assert out.vectors.tolist() == [[1.0], [2.0]]
