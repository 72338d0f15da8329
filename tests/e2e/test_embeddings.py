"""Embeddings on every face of a running Spool, with the real clients: the unmodified ai-server-sdk
(`embeddings()` and its LangChain embedder), the unmodified openai SDK, and the native API over
httpx; on the offline engine and through an upstream engine (the fake upstream)."""

from __future__ import annotations

import base64
import uuid

import httpx
import numpy as np
import openai
import pytest
from ai_server import ModelEngine, ServerClient

import fakeupstream
from engine.offline.embedding import embed_text
from engine.offline.tokenizer import default_tokenizer
from fakeupstream.scenarios import embedding
from tests.e2e.openai_helpers import OFFLINE, client

pytestmark = pytest.mark.e2e

WIDTH = 1024  # the offline engine's default
DOCS = [
    "The king rode out to battle with his army at dawn.",
    "Bake the bread in a hot oven for forty minutes.",
    "The stock market fell sharply on Monday morning.",
    "Our cat likes to sleep in the sun all afternoon.",
    "A football match ended in a goalless draw.",
]


def offline(text: str, width: int = WIDTH) -> np.ndarray:
    return embed_text(text, width)


def same(got: list, sent: list) -> bool:
    """Spool keeps vectors as float32 (as OpenAI's are) and writes each as the shortest number
    that reads back to the same float32."""
    return np.array_equal(np.array(got, dtype=np.float32), np.array(sent, dtype=np.float32))


def tokens(*texts: str) -> int:
    return sum(default_tokenizer().count_tokens(t) for t in texts)


@pytest.fixture
def sdk(spool) -> None:
    ServerClient(base=spool.semoss, access_key=spool.alice.access_key, secret_key=spool.alice.secret_key)


@pytest.fixture
def upstream_embedder(upstream, pg):
    """An engine of kind openai on the fake upstream, whose embedding model carries a fresh fault
    key (so its records are this test's); (engine name, key)."""
    from jobs import services

    key = uuid.uuid4().hex
    name = f"fake-embed-{key[:8]}"
    config = {"base_url": upstream, "model": "fake", "embedding_model": f"fake?dims=6&key={key}"}
    services.engine_upsert(name=name, kind="openai", config=config)
    return name, key


@pytest.fixture
def chat_only(upstream, pg) -> str:
    from jobs import services

    name = f"chat-only-{uuid.uuid4().hex[:8]}"
    config = {"base_url": upstream, "model": "fake", "embeddings": False}
    services.engine_upsert(name=name, kind="openai", config=config)
    return name


@pytest.fixture
def failing(upstream, pg) -> str:
    from jobs import services

    name = f"failing-{uuid.uuid4().hex[:8]}"
    config = {"base_url": upstream, "model": "fake?fail=500", "max_retries": 0}
    services.engine_upsert(name=name, kind="openai", config=config)
    return name


# ---- ai-server-sdk -----------------------------------------------------------------------------


def test_the_sdk_gets_one_offline_vector_per_string_in_semoss_shape(spool, sdk):
    out = ModelEngine(engine_id=spool.engine_id).embeddings(["a", "b"])
    # SEMOSS's EmbeddingsModelEngineResponse.toMap(), the keys the SDK's own test expects.
    assert set(out) == {"response", "numberOfTokensInPrompt", "numberOfTokensInResponse"}
    assert out["numberOfTokensInPrompt"] == tokens("a", "b") and out["numberOfTokensInResponse"] == 0
    got = np.array(out["response"], dtype=np.float32)
    assert got.shape == (2, WIDTH) and isinstance(out["response"][0][0], float)
    assert np.array_equal(got, np.stack([offline("a"), offline("b")]))


def test_strings_python_repr_quotes_and_escapes_arrive_exactly(spool, sdk):
    # The SDK writes values with repr(): these come as "it's", 'say "hi"', 'both \' and "', '\n'...
    texts = [
        "it's",
        'say "hi"',
        "both ' and \"",
        "line\nbreak\ttab",
        "Tōkyō 東京 ☃",
        "bell\x07",
        "back\\slash",
    ]
    out = ModelEngine(engine_id=spool.engine_id).embeddings(texts)
    assert np.array_equal(np.array(out["response"], dtype=np.float32), np.stack([offline(t) for t in texts]))


def test_param_values_set_the_width(spool, sdk):
    out = ModelEngine(engine_id=spool.engine_id).embeddings(["a"], param_dict={"dimensions": 32})
    assert np.array_equal(np.array(out["response"][0], dtype=np.float32), offline("a", 32))


def test_the_sdk_embeds_through_an_upstream_engine(spool, sdk, upstream, upstream_embedder):
    name, key = upstream_embedder
    out = ModelEngine(engine_id=name).embeddings(["one", "two"], param_dict={"user": "u-9"})
    assert same(out["response"], [embedding("one", 6), embedding("two", 6)])
    assert out["numberOfTokensInPrompt"] == 2  # the fake's count, passed through
    (record,) = fakeupstream.recorded(upstream, key)
    assert record["body"] == {"model": f"fake?dims=6&key={key}", "input": ["one", "two"], "user": "u-9"}


def test_the_langchain_embedder_finds_the_nearest_text_in_a_similarity_search(spool, sdk):
    from langchain_core.vectorstores import InMemoryVectorStore

    embedder = ModelEngine(engine_id=spool.engine_id).to_langchain_embedder()
    store = InMemoryVectorStore.from_texts(DOCS, embedding=embedder)
    for query, expected in [
        ("how long should bread bake in the oven?", DOCS[1]),
        ("the cat sleeps in the sun", DOCS[3]),
        ("kings and armies in battle", DOCS[0]),
        ("stock market news", DOCS[2]),
    ]:
        (best,) = store.similarity_search(query, k=1)
        assert best.page_content == expected, query
    vector = embedder.embed_query("a query")
    assert len(vector) == WIDTH and np.array_equal(np.array(vector, dtype=np.float32), offline("a query"))


@pytest.mark.parametrize(
    ("values", "params", "error"),
    [
        (["ok", ""], None, "Input 1 is an empty string"),
        ([], None, "nothing to embed"),
        (["ok"], {"temperature": 1}, "Unknown parameter 'temperature'"),
        (["ok"], {"dimensions": 0}, "dimensions must be from 1 to 4096"),
        (["ok"], {"dimensions": "8"}, "dimensions must be an integer"),
    ],
)
def test_bad_values_and_params_are_an_error_the_sdk_raises(spool, sdk, values, params, error):
    with pytest.raises(Exception, match=error):
        ModelEngine(engine_id=spool.engine_id).embeddings(values, param_dict=params)


def test_an_unknown_engine_and_an_engine_that_cannot_embed_are_errors(spool, sdk, chat_only):
    with pytest.raises(Exception, match="Unknown engine 'no-such-engine'"):
        ModelEngine(engine_id="no-such-engine").embeddings(["a"])
    with pytest.raises(Exception, match=f"Engine '{chat_only}' does not support embeddings"):
        ModelEngine(engine_id=chat_only).embeddings(["a"])


def test_a_failing_upstream_is_an_error_naming_it(spool, sdk, failing):
    with pytest.raises(Exception, match="upstream answered 500"):
        ModelEngine(engine_id=failing).embeddings(["a"])


# ---- openai SDK --------------------------------------------------------------------------------


def test_the_openai_sdk_gets_float_embeddings_with_usage(spool):
    out = client(spool).embeddings.create(model=OFFLINE, input=["a", "b c"], encoding_format="float")
    assert out.object == "list" and out.model == OFFLINE
    assert [d.index for d in out.data] == [0, 1] and {d.object for d in out.data} == {"embedding"}
    got = np.array([d.embedding for d in out.data], dtype=np.float32)
    assert np.array_equal(got, np.stack([offline("a"), offline("b c")]))
    assert out.usage.prompt_tokens == out.usage.total_tokens == tokens("a", "b c")


def test_base64_asked_for_is_the_float32_bytes_and_the_sdks_default_decodes_to_the_same(spool):
    sdk = client(spool)
    raw = sdk.embeddings.create(model=OFFLINE, input="the king", encoding_format="base64")
    encoded = raw.data[0].embedding
    assert isinstance(encoded, str)
    assert np.array_equal(np.frombuffer(base64.b64decode(encoded), dtype="<f4"), offline("the king"))
    default = sdk.embeddings.create(model=OFFLINE, input="the king")  # the SDK asks for base64
    assert np.array_equal(np.array(default.data[0].embedding, dtype=np.float32), offline("the king"))


def test_dimensions_sets_the_width(spool):
    out = client(spool).embeddings.create(model=OFFLINE, input="x", dimensions=64, encoding_format="float")
    assert len(out.data[0].embedding) == 64


def test_token_arrays_embed_as_the_text_they_stand_for(spool):
    sdk = client(spool)
    ids = default_tokenizer().encode("the king")
    one = sdk.embeddings.create(model=OFFLINE, input=ids, encoding_format="float")
    many = sdk.embeddings.create(model=OFFLINE, input=[ids, ids[:1]], encoding_format="float")
    assert np.array_equal(np.array(one.data[0].embedding, dtype=np.float32), offline("the king"))
    assert len(many.data) == 2 and one.usage.prompt_tokens == len(ids)


def test_the_openai_sdk_embeds_through_an_upstream_engine_passing_its_parameters_on(
    spool, upstream, upstream_embedder
):
    name, key = upstream_embedder
    out = client(spool).embeddings.create(model=name, input=["one"], dimensions=3, user="u-1")
    assert same(out.data[0].embedding, embedding("one", 3)) and out.model == name
    (record,) = fakeupstream.recorded(upstream, key)
    # The SDK asked Spool for base64 by default; Spool asked the upstream the same.
    assert record["body"] == {
        "model": f"fake?dims=6&key={key}", "input": ["one"], "dimensions": 3, "user": "u-1",
        "encoding_format": "base64",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({"input": ["x"] * 2049}, 400, "input", "array_above_max_length"),
        ({"input": ""}, 400, "input[0]", "invalid_value"),
        ({"input": []}, 400, "input", "empty_array"),
        ({"input": [[]]}, 400, "input[0]", "invalid_value"),
        ({"input": {"text": "x"}}, 400, "input", "invalid_type"),
        ({"input": ["x", 1]}, 400, "input", "invalid_type"),
        ({"input": "x", "dimensions": 0}, 400, "dimensions", "integer_below_min_value"),
        ({"input": "x", "encoding_format": "hex"}, 400, "encoding_format", "invalid_value"),
        ({"input": "x", "temperature": 1}, 400, "temperature", "unknown_parameter"),
        ({"input": "x", "model": "no-such-model"}, 404, None, "model_not_found"),
        ({"input": [[10**9]]}, 400, "input[0]", "unsupported_parameter"),
    ],
)
def test_bad_requests_are_errors_in_openais_envelope(spool, body, status, param, code):
    response = httpx.post(
        f"{spool.base_url}/v1/embeddings",
        json={"model": OFFLINE, **body},
        headers={"Authorization": f"Bearer {spool.alice.secret_key}"},
        timeout=30,
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["param"] == param
    assert error["type"] == "invalid_request_error" and error["message"]


def test_the_2048_inputs_openai_allows_are_embedded(spool):
    out = client(spool).embeddings.create(model=OFFLINE, input=[f"text {i}" for i in range(2048)])
    assert len(out.data) == 2048 and out.data[2047].index == 2047


def test_the_openai_sdk_raises_for_an_engine_that_cannot_embed_and_for_a_failing_upstream(
    spool, chat_only, failing
):
    sdk = client(spool)
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.embeddings.create(model=chat_only, input="x")
    assert refused.value.code == "embeddings_unsupported" and refused.value.param == "model"
    with pytest.raises(openai.InternalServerError) as failed:
        sdk.embeddings.create(model=failing, input="x")
    assert failed.value.status_code == 502 and failed.value.code == "upstream_error"


# ---- native API --------------------------------------------------------------------------------


def native(spool, body: dict) -> httpx.Response:
    return httpx.post(
        f"{spool.base_url}/v1/jobs/embeddings",
        json=body,
        headers={"Authorization": f"Bearer {spool.alice.secret_key}"},
        timeout=30,
    )


def test_the_native_api_embeds_with_its_own_words(spool):
    answer = native(spool, {"engine": OFFLINE, "input": ["a", "b"], "parameters": {"dimensions": 16}})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["object"] == "embeddings" and body["engine"]["name"] == OFFLINE
    assert body["dimensions"] == 16 and body["usage"] == {"input_tokens": tokens("a", "b")}
    assert np.array_equal(
        np.array(body["embeddings"], dtype=np.float32), np.stack([offline("a", 16), offline("b", 16)])
    )
    encoded = native(spool, {"model": OFFLINE, "input": "a", "parameters": {"encoding_format": "base64"}})
    (one,) = encoded.json()["embeddings"]
    assert np.array_equal(np.frombuffer(base64.b64decode(one), dtype="<f4"), offline("a"))


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({"input": "a"}, 400, "engine", "missing_required_parameter"),
        ({"engine": "no-such", "input": "a"}, 404, "engine", "engine_not_found"),
        ({"engine": OFFLINE, "input": "a", "parameters": {"top_p": 1}}, 400, "top_p", "unknown_parameter"),
        ({"engine": OFFLINE, "input": ["a", ""]}, 400, "input[1]", "invalid_value"),
        ({"engine": OFFLINE}, 400, "input", "missing_required_parameter"),
    ],
)
def test_the_native_api_refuses_bad_requests_in_its_envelope(spool, body, status, param, code):
    answer = native(spool, body)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["param"] == param and answer.json()["error"]["code"] == code


def test_the_native_api_names_an_engine_that_cannot_embed(spool, chat_only):
    answer = native(spool, {"model": chat_only, "input": "a"})
    assert answer.status_code == 400
    assert (
        answer.json()["error"]["code"] == "embeddings_unsupported"
        and answer.json()["error"]["param"] == "model"
    )


# ---- the documents -----------------------------------------------------------------------------


def test_both_endpoints_are_in_the_generated_document_from_their_serializers(spool):
    document = httpx.get(f"{spool.base_url}/v1/openapi.json").json()
    create = document["paths"]["/v1/embeddings"]["post"]
    schema = create["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/EmbeddingCreateRequest"}
    fields = document["components"]["schemas"]["EmbeddingCreateRequest"]
    assert fields["required"] == ["input", "model"]
    assert len(fields["properties"]["input"]["oneOf"]) == 4
    (encoding,) = fields["properties"]["encoding_format"]["allOf"]
    enum = document["components"]["schemas"][encoding["$ref"].rsplit("/", 1)[1]]["enum"]
    assert enum == ["float", "base64"]
    assert "/v1/jobs/embeddings" in httpx.get(f"{spool.base_url}/v1/jobs/openapi.json").json()["paths"]


# ---- metrics -----------------------------------------------------------------------------------


def test_the_web_counts_embedding_requests_by_face_and_outcome_and_the_inputs(spool, chat_only):
    from tests.e2e.test_operations import scrape, value

    url = f"{spool.base_url}/metrics"
    before = scrape(url)
    client(spool).embeddings.create(model=OFFLINE, input=["a", "b", "c"])
    with pytest.raises(openai.BadRequestError):
        client(spool).embeddings.create(model=chat_only, input="x")
    after = scrape(url)
    ok = {"engine": OFFLINE, "face": "openai", "outcome": "ok"}
    refused = {"engine": chat_only, "face": "openai", "outcome": "embeddings_unsupported"}
    for labels in (ok, refused):
        name = "spool_embedding_requests_total"
        assert value(after, name, **labels) == value(before, name, **labels) + 1, labels
    inputs = "spool_embedded_inputs_total"
    assert value(after, inputs, engine=OFFLINE) == value(before, inputs, engine=OFFLINE) + 3
