"""Hostile bodies, URLs and keys at every face: a clear 4xx in the face's shape, never a 5xx or a hang."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import llm_pixel
from tests.e2e.openai_helpers import OFFLINE

pytestmark = pytest.mark.e2e

TIMEOUT = 30  # an answer that never comes fails the test instead of hanging it
LIMIT = 1024 * 1024  # SPOOL_MAX_BODY_BYTES, the default the test server runs with
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
DEEP = 100_000


# ---- the faces ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """A POST endpoint that reads a body, and the body it would accept with `text` in a field
    that is kept (so a NUL or a lone surrogate there has to reach storage unless refused)."""

    name: str
    path: str
    face: str  # "openai", "jobs" (same envelope) or "semoss"
    valid: Callable[[str, str], dict[str, Any]]  # (engine id, text) -> JSON body


ENDPOINTS = [
    Endpoint(
        "openai create",
        "/v1/chat/completions",
        "openai",
        lambda engine, text: {
            "model": OFFLINE, "max_completion_tokens": 2, "messages": [{"role": "user", "content": text}],
        },
    ),
    Endpoint(
        "openai update",
        "/v1/chat/completions/{stored}",
        "openai",
        lambda engine, text: {"metadata": {"note": text}},
    ),
    Endpoint(
        "native create",
        "/v1/jobs",
        "jobs",
        lambda engine, text: {"engine": engine, "command": text, "parameters": {"max_tokens": 2}},
    ),
    Endpoint(
        "semoss runPixelAsync",
        "/Monolith/api/engine/runPixelAsync",
        "semoss",
        lambda engine, text: {"insightId": "new", "expression": llm_pixel(engine, text, {"max_tokens": 2})},
    ),
    Endpoint(
        "semoss runPixel",
        "/Monolith/api/engine/runPixel",
        "semoss",
        lambda engine, text: {"insightId": "new", "expression": llm_pixel(engine, text, {"max_tokens": 2})},
    ),
    Endpoint(
        "semoss pixelJobStreaming",
        "/Monolith/api/engine/pixelJobStreaming",
        "semoss",
        lambda engine, text: {"jobId": text},
    ),
]  # fmt: skip
RUN_ASYNC, POLL = ENDPOINTS[3], ENDPOINTS[5]
STORING = [e for e in ENDPOINTS if e is not POLL]
JSON_FACES = [e for e in ENDPOINTS if e.face != "semoss"]


def _ids(endpoints: list[Endpoint]) -> list[str]:
    return [e.name for e in endpoints]


@pytest.fixture(scope="module")
def http(spool) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=spool.base_url, timeout=TIMEOUT) as client:
        yield client


@pytest.fixture(scope="module")
def stored(spool, http) -> str:
    """A stored completion of alice's, whose metadata the update endpoint replaces."""
    body = {
        "model": OFFLINE,
        "max_tokens": 2,
        "store": True,
        "messages": [{"role": "user", "content": "Hi."}],
    }
    response = http.post("/v1/chat/completions", json=body, headers=_bearer(spool))
    assert response.status_code == 200, response.text
    return response.json()["id"]


def _bearer(spool) -> dict[str, str]:
    return {"Authorization": f"Bearer {spool.alice.secret_key}"}


def _basic(access: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{access}:{secret}".encode()).decode()}


def _semoss_auth(spool) -> dict[str, str]:
    return _basic(spool.alice.access_key, spool.alice.secret_key)


def _auth(spool, endpoint: Endpoint) -> dict[str, str]:
    return _semoss_auth(spool) if endpoint.face == "semoss" else _bearer(spool)


def post(spool, http, endpoint: Endpoint, stored: str, body: bytes | Iterator[bytes], content_type: str):
    path = endpoint.path.format(stored=stored)
    headers = {**_auth(spool, endpoint), "Content-Type": content_type}
    return http.post(path, content=body, headers=headers)


def assert_refused(response: httpx.Response, face: str, status: int, code: str | None = None) -> dict:
    """The status, in the face's own error shape, as JSON."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"] == JSON, response.text[:500]
    body = response.json()
    if face == "semoss":
        assert isinstance(body["errorMessage"], str) and body["errorMessage"], body
    else:
        error = body["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"], body
        assert error["type"] == "invalid_request_error", body
        if code is not None:
            assert error["code"] == code, body
    return body


@pytest.fixture(autouse=True)
def still_serving(spool, http):
    """After every test, each face still answers a normal request at once."""
    yield
    assert http.get("/v1/models", headers=_bearer(spool), timeout=5).status_code == 200
    assert http.get("/v1/jobs/openapi.json", timeout=5).status_code == 200
    # Not through `http`: the login cookie it would keep must not stand in for a refused key.
    semoss = httpx.get(f"{spool.semoss}/config", headers=_semoss_auth(spool), timeout=5)
    assert semoss.json()["loginDetails"] == {"SPOOL": "alice"}


# ---- bodies that are not JSON, or not JSON Spool can hold ---------------------------------------

NOT_JSON = {
    "invalid UTF-8": b'{"model": "\xff\xfe", "messages": "\xc3\x28"}',
    "an encoded surrogate": b'{"model": "\xed\xa0\x80"}',
    "arrays nested 100,000 deep": b"[" * DEEP + b"]" * DEEP,
    "objects nested 100,000 deep": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "NaN": b'{"model": "m", "temperature": NaN}',
    "Infinity": b'{"model": "m", "temperature": -Infinity}',
    "a number too large for a float": b'{"model": "m", "temperature": 1e999}',
    "an integer of 5000 digits": b'{"model": "m", "seed": ' + b"9" * 5000 + b"}",
    "truncated JSON": b'{"model": "m", "messages": [',
    "a form body": b"model=m&messages=hi",
}


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids(ENDPOINTS))
@pytest.mark.parametrize("case", NOT_JSON)
def test_a_body_that_is_not_json_spool_can_read_is_a_400_in_the_faces_shape(
    spool, http, stored, endpoint, case
):
    response = post(spool, http, endpoint, stored, NOT_JSON[case], JSON)
    assert_refused(response, endpoint.face, 400, "invalid_json")


NOT_OBJECTS = [b"[]", b'"text"', b"42", b"null", b"true", b"[{}]"]


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids(ENDPOINTS))
@pytest.mark.parametrize("body", NOT_OBJECTS, ids=[b.decode() for b in NOT_OBJECTS])
def test_json_that_is_not_an_object_is_a_400_in_the_faces_shape(spool, http, stored, endpoint, body):
    assert_refused(post(spool, http, endpoint, stored, body, JSON), endpoint.face, 400)


@pytest.mark.parametrize("endpoint", JSON_FACES, ids=_ids(JSON_FACES))
def test_an_empty_body_is_a_400_at_the_json_faces(spool, http, stored, endpoint):
    response = post(spool, http, endpoint, stored, b"", JSON)
    assert_refused(response, endpoint.face, 400, "invalid_json")


def test_an_empty_body_at_semoss_is_a_request_without_parameters(spool, http, stored):
    """SEMOSS reads an absent form as no parameters: no pixel to run, no job to name."""
    body = assert_refused(post(spool, http, RUN_ASYNC, stored, b"", JSON), "semoss", 400)
    assert body["errorMessage"].startswith("The pixel is empty")
    response = post(spool, http, POLL, stored, b"", FORM)
    assert response.status_code == 200 and response.json() == {"message": [], "status": "UnknownJob"}


UNSTORABLE = {
    "a NUL character": "before\x00after",
    "an unpaired high surrogate": "before\ud800after",
    "an unpaired low surrogate": "\udfff",
}


def refusal(response: httpx.Response, endpoint: Endpoint) -> str:
    """The message of a refused value: a 400 in the envelope, or at runPixel, which answers
    every pixel in-band, an ERROR pixelReturn (as SEMOSS does)."""
    if endpoint.name == "semoss runPixel":
        assert response.status_code == 200, response.text[:500]
        (pixel,) = response.json()["pixelReturn"]
        assert pixel["operationType"] == ["ERROR"], pixel
        return pixel["output"]
    body = assert_refused(response, endpoint.face, 400)
    if endpoint.face == "semoss":
        return body["errorMessage"]
    assert body["error"]["code"] == "invalid_value" and body["error"]["param"], body
    return body["error"]["message"]


@pytest.mark.parametrize("endpoint", STORING, ids=_ids(STORING))
@pytest.mark.parametrize("case", UNSTORABLE)
def test_text_postgres_cannot_hold_is_refused_with_a_message_naming_it(spool, http, stored, endpoint, case):
    body = json.dumps(endpoint.valid(spool.engine_id, UNSTORABLE[case])).encode()  # \u escapes
    message = refusal(post(spool, http, endpoint, stored, body, JSON), endpoint)
    assert "NUL" in message if "NUL" in case else "surrogate" in message


@pytest.mark.parametrize("endpoint", STORING, ids=_ids(STORING))
def test_the_same_body_with_ordinary_text_is_accepted(spool, http, stored, endpoint):
    """The bodies the tests above spoil are valid ones: the 400s come from the spoiling."""
    body = json.dumps(endpoint.valid(spool.engine_id, "before after")).encode()
    response = post(spool, http, endpoint, stored, body, JSON)
    assert response.status_code in (200, 202), response.text
    if endpoint.face == "semoss":
        assert "errorMessage" not in response.json() and '"ERROR"' not in response.text, response.text


def test_a_number_too_large_for_a_float_inside_a_pixel_is_refused(spool, http, stored):
    params = '{"max_tokens": 2, "full_prompt": [{"role": "user", "content": "x", "weight": 1e999}]}'
    pixel = f'LLM(engine="{spool.engine_id}", command="<encode>x</encode>", paramValues=[{params}]);'
    response = post(spool, http, RUN_ASYNC, stored, json.dumps({"expression": pixel}).encode(), JSON)
    body = assert_refused(response, "semoss", 400)
    assert "not finite" in body["errorMessage"] and body["jobId"] is None


def test_a_pixel_nested_100000_deep_is_refused(spool, http, stored):
    for value in ("[" * DEEP, "[{" + '"a":[' * DEEP):
        pixel = f'LLM(engine="{spool.engine_id}", command="<encode>x</encode>", paramValues={value});'
        response = post(spool, http, RUN_ASYNC, stored, json.dumps({"expression": pixel}).encode(), JSON)
        assert_refused(response, "semoss", 400)


def test_a_room_id_that_is_not_a_uuid_is_an_unknown_room(spool, http, stored):
    pixel = llm_pixel(spool.engine_id, "hello", {"max_tokens": 2}, roomId="not-a-room")
    response = post(spool, http, RUN_ASYNC, stored, json.dumps({"expression": pixel}).encode(), JSON)
    assert assert_refused(response, "semoss", 400)["errorMessage"] == "Unknown room 'not-a-room'."


@pytest.mark.parametrize("function", ["f", ["f"], {"name": ["f"]}, {}], ids=str)
def test_a_tool_choice_whose_function_is_malformed_is_a_400(spool, http, function):
    body = {
        "model": OFFLINE,
        "messages": [{"role": "user", "content": "Hi"}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": {"type": "function", "function": function},
    }
    response = http.post("/v1/chat/completions", json=body, headers=_bearer(spool))
    error = assert_refused(response, "openai", 400)["error"]
    assert error["param"] == "tool_choice.function.name", error


def test_a_content_part_that_is_no_object_is_refused_on_the_native_face_naming_it(spool, http):
    """The OpenAI face's serializer refuses such parts; the native face leaves messages to the
    engine, whose check names the part rather than dropping it."""
    parts = [{"type": "text", "text": "kept"}, 1]
    body = {"engine": OFFLINE, "messages": [{"role": "user", "content": parts}], "store": True,
            "parameters": {"max_tokens": 2}}  # fmt: skip
    response = http.post("/v1/jobs", json=body, headers=_bearer(spool))
    error = assert_refused(response, "jobs", 400)["error"]
    assert error["param"] == "messages[0].content[1]", error
    assert "a content part is an object with a type" in error["message"], error


# ---- size ----------------------------------------------------------------------------------------


def _oversized() -> bytes:
    text = "x" * LIMIT
    body = {"model": OFFLINE, "max_tokens": 1, "messages": [{"role": "user", "content": text}]}
    return json.dumps(body).encode()


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids(ENDPOINTS))
def test_a_body_over_the_size_limit_is_a_413_in_the_faces_shape(spool, http, stored, endpoint):
    body = assert_refused(post(spool, http, endpoint, stored, _oversized(), JSON), endpoint.face, 413)
    if endpoint.face == "semoss":
        assert body["status"] == "Unavailable" and body["message"] == []
    else:
        assert body["error"]["code"] == "request_too_large"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids(ENDPOINTS))
def test_a_chunked_body_over_the_size_limit_is_a_413_too(spool, http, stored, endpoint):
    """No Content-Length to refuse it by: the limit holds on what arrives."""
    data = _oversized()
    chunks = (data[i : i + 65536] for i in range(0, len(data), 65536))
    response = post(spool, http, endpoint, stored, chunks, JSON)
    assert "content-length" not in response.request.headers
    assert_refused(response, endpoint.face, 413)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids(ENDPOINTS))
def test_a_body_just_under_the_limit_is_read(spool, http, stored, endpoint):
    """The 413 above is the size, not the content: the same body, a little shorter, is read
    (and refused for what it says, or taken)."""
    body = _oversized()[: LIMIT - 100] + b'"}]}'
    response = post(spool, http, endpoint, stored, body, JSON)
    assert response.status_code != 413 and response.status_code < 500, response.text[:300]


# ---- SEMOSS forms ------------------------------------------------------------------------------

SEMOSS_FORM = [e for e in ENDPOINTS if e.face == "semoss"]


@pytest.mark.parametrize("endpoint", SEMOSS_FORM, ids=_ids(SEMOSS_FORM))
@pytest.mark.parametrize(
    "body",
    [b"insightId=new&expression=%FF%FE", b"insightId=new&expression=\xff\xfe", b"jobId=%C3%28"],
    ids=["percent-encoded", "raw", "a broken two-byte sequence"],
)
def test_a_form_field_that_is_not_utf8_is_a_400(spool, http, stored, endpoint, body):
    response = post(spool, http, endpoint, stored, body, FORM)
    assert "not valid UTF-8" in assert_refused(response, "semoss", 400)["errorMessage"]


@pytest.mark.parametrize("endpoint", SEMOSS_FORM, ids=_ids(SEMOSS_FORM))
def test_a_form_with_more_fields_than_django_reads_is_a_400(spool, http, stored, endpoint):
    body = "&".join(f"field{i}=1" for i in range(1500)).encode()
    assert_refused(post(spool, http, endpoint, stored, body, FORM), "semoss", 400)


@pytest.mark.parametrize("endpoint", SEMOSS_FORM, ids=_ids(SEMOSS_FORM))
def test_a_multipart_body_without_a_boundary_is_a_400(spool, http, stored, endpoint):
    body = b'--x\r\nContent-Disposition: form-data; name="jobId"\r\n\r\n1\r\n--x--\r\n'
    assert_refused(post(spool, http, endpoint, stored, body, "multipart/form-data"), "semoss", 400)


@pytest.mark.parametrize("endpoint", SEMOSS_FORM, ids=_ids(SEMOSS_FORM))
@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/octet-stream"])
def test_a_body_in_a_content_type_semoss_does_not_read_is_a_415(spool, http, stored, endpoint, content_type):
    body = b"insightId=new&expression=META%20%7C%20true"
    response = post(spool, http, endpoint, stored, body, content_type)
    assert content_type in assert_refused(response, "semoss", 415)["errorMessage"]


def test_a_nul_in_a_form_field_is_refused_where_it_would_be_kept(spool, http, stored):
    form = {"insightId": "new", "expression": llm_pixel(spool.engine_id, "a\x00b", {"max_tokens": 2})}
    response = http.post("/Monolith/api/engine/runPixelAsync", data=form, headers=_semoss_auth(spool))
    assert "NUL" in assert_refused(response, "semoss", 400)["errorMessage"]


# ---- URLs and keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v1/chat/completions?model=%00",
        "/v1/chat/completions?after=a%00b",
        "/v1/chat/completions?metadata[k%00]=v",
        "/v1/chat/completions/chatcmpl-0/messages?after=%00",
        "/v1/jobs/00000000-0000-0000-0000-000000000000/chunks?after=%00",
    ],
)
def test_a_nul_in_the_query_string_is_a_400(spool, http, path):
    response = http.get(path, headers=_bearer(spool))
    assert_refused(response, "openai", 400, "invalid_value")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/chat/completions/chatcmpl-%00",
        "/v1/chat/completions/%00/messages",
        "/v1/chat/completions/chatcmpl-%00/cancel",
        "/v1/models/spool%00offline",
        "/v1/jobs/%00",
    ],
)
def test_a_nul_in_an_id_is_an_unknown_id(spool, http, path):
    method = "POST" if path.endswith("/cancel") else "GET"
    assert_refused(http.request(method, path, headers=_bearer(spool)), "openai", 404)


@pytest.mark.parametrize("face", ["openai", "jobs", "semoss"])
@pytest.mark.parametrize("access", ["spool\x00ak", "\ud800", "\x00"])
def test_a_basic_key_holding_a_nul_or_a_lone_surrogate_is_a_401(spool, http, face, access):
    raw = f"{access}:{spool.alice.secret_key}".encode(errors="surrogatepass")
    headers = {"Authorization": "Basic " + base64.b64encode(raw).decode(), "Content-Type": FORM}
    path = {"openai": "/v1/models", "jobs": "/v1/jobs/x", "semoss": "/Monolith/api/engine/status"}[face]
    response = http.request("GET" if face != "semoss" else "POST", path, headers=headers)
    assert_refused(response, face, 401)


def test_a_cursor_past_any_log_is_an_empty_page_not_an_outage(spool, http):
    # Long enough to be read from the live log in Redis, which refused cursors past 64 bits.
    body = {"engine": OFFLINE, "command": "hi", "parameters": {"max_tokens": 300}}
    job = http.post("/v1/jobs", json=body, headers=_bearer(spool)).json()
    huge = 2**80
    page = http.get(f"/v1/jobs/{job['id']}/chunks", params={"after": huge}, headers=_bearer(spool))
    assert page.status_code == 200 and page.json()["chunks"] == [] and page.json()["last_seq"] == huge
    semoss = http.post(
        "/Monolith/api/engine/pixelJobStreaming",
        data={"jobId": job["id"], "cursor": str(huge)},
        headers=_semoss_auth(spool),
    )
    assert semoss.status_code == 200 and semoss.json()["message"] == []
    assert http.post(f"/v1/jobs/{job['id']}/cancel", headers=_bearer(spool)).status_code == 200


# ---- and afterwards ----------------------------------------------------------------------------


def test_after_all_of_this_every_face_still_runs_a_generation(spool, http):
    body = {"model": OFFLINE, "max_tokens": 3, "messages": [{"role": "user", "content": "Speak."}]}
    chat = http.post("/v1/chat/completions", json=body, headers=_bearer(spool))
    assert chat.status_code == 200 and chat.json()["choices"][0]["finish_reason"], chat.text
    job = http.post(
        "/v1/jobs", json={"engine": OFFLINE, "command": "Speak.", "parameters": {"max_tokens": 3}},
        headers=_bearer(spool),
    ).json()  # fmt: skip
    ended = http.get(f"/v1/jobs/{job['id']}", params={"wait": 20}, headers=_bearer(spool)).json()
    assert ended["status"] == "succeeded", ended
    form = {"insightId": "new", "expression": llm_pixel(spool.engine_id, "Speak.", {"max_tokens": 3})}
    pixel = http.post("/Monolith/api/engine/runPixel", data=form, headers=_semoss_auth(spool))
    assert pixel.json()["pixelReturn"][0]["operationType"] == ["OPERATION"], pixel.text
