"""The native /v1/jobs API over raw HTTP: create, get, long-poll, SSE with resume, cancel, errors."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import uuid
from typing import Any

import httpx
import pytest
from django.conf import settings

from tests.e2e.helpers import NO_EOT, make_engine

pytestmark = pytest.mark.e2e

FIFTY = {"max_completion_tokens": 48, "seed": 11, **NO_EOT}  # 48 content + usage + finish


# ---- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture(scope="module")
def engines(django_db_blocker) -> dict[str, str]:
    with django_db_blocker.unblock():
        return {
            "fast": make_engine("native-fast", tokens_per_second=0),
            "slow": make_engine("native-slow", tokens_per_second=40),
        }


def _client(spool, secret: str) -> httpx.Client:
    return httpx.Client(base_url=spool.base_url, headers={"Authorization": f"Bearer {secret}"}, timeout=60)


@pytest.fixture
def api(spool):
    with _client(spool, spool.alice.secret_key) as client:
        yield client


@pytest.fixture
def bob_api(spool):
    with _client(spool, spool.bob.secret_key) as client:
        yield client


def create(api: httpx.Client, engine: str, command: str = "tell me about windmills", **body: Any) -> dict:
    response = api.post("/v1/jobs", json={"engine": engine, "command": command, **body})
    assert response.status_code == 202, response.text
    return conforms(response.json(), "Job")


def finished(api: httpx.Client, job_id: str) -> dict:
    for _ in range(20):
        job = api.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return conforms(job, "Job")
    raise AssertionError(f"job {job_id} did not finish: {job}")


def sse_frames(text: str) -> list[dict[str, Any]]:
    """Frames of an SSE body, parsed by hand (independent of the client package)."""
    frames = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        frame: dict[str, Any] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(": ")
            frame[name] = value
        if "data" in frame:
            frame["data"] = json.loads(frame["data"])
        frames.append(frame)
    return frames


def events(api: httpx.Client, job_id: str, **kwargs: Any) -> list[dict[str, Any]]:
    response = api.get(f"/v1/jobs/{job_id}/events", **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return sse_frames(response.text)


# A small validator for the subset of JSON Schema the OpenAPI document uses, so the tests can
# hold the responses to the published shapes without another dependency.
@functools.cache
def _schemas() -> dict[str, Any]:
    """The components of the generated document, as the server serves it."""
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]


def _check(value: Any, schema: dict[str, Any], path: str) -> None:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return _check(value, _schemas()[name], path)
    for option in schema.get("allOf", []):
        _check(value, option, path)
    if "anyOf" in schema or "oneOf" in schema:
        errors = []
        for option in schema.get("anyOf") or schema["oneOf"]:
            try:
                _check(value, option, path)
                return None
            except AssertionError as exc:
                errors.append(str(exc))
        raise AssertionError(f"{path}: matches no option: {errors}")
    if "const" in schema:
        assert value == schema["const"], f"{path}: {value!r} != {schema['const']!r}"
    if "enum" in schema:
        assert value in schema["enum"], f"{path}: {value!r} not in {schema['enum']}"
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        python = {
            "string": str, "integer": int, "number": (int, float), "boolean": bool,
            "object": dict, "array": list, "null": type(None),
        }  # fmt: skip
        ok = any(
            isinstance(value, python[name])
            and not (name in ("integer", "number") and isinstance(value, bool))
            for name in names
        )
        assert ok, f"{path}: {value!r} is not {names}"
    if "minimum" in schema and isinstance(value, int | float):
        assert value >= schema["minimum"], f"{path}: {value} < {schema['minimum']}"
    if isinstance(value, dict):
        for name in schema.get("required", []):
            assert name in value, f"{path}: missing {name!r}"
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                _check(item, properties[name], f"{path}.{name}")
            elif extra is False:
                raise AssertionError(f"{path}: unexpected {name!r}")
            elif isinstance(extra, dict):
                _check(item, extra, f"{path}.{name}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            _check(item, schema["items"], f"{path}[{index}]")
    return None


def conforms(value: Any, schema_name: str) -> Any:
    _check(value, {"$ref": f"#/components/schemas/{schema_name}"}, schema_name)
    return value


def assert_error(
    response: httpx.Response, status: int, *, code: str | None, param: str | None = None
) -> None:
    assert response.status_code == status, response.text
    body = conforms(response.json(), "Error")["error"]
    assert body["code"] == code and body["param"] == param, body
    assert body["message"]


# ---- create and get --------------------------------------------------------------------------


def test_creating_a_job_answers_at_once_with_its_id_and_status(api, engines):
    job = create(api, engines["slow"], parameters={"max_completion_tokens": 5})
    assert uuid.UUID(job["id"]) and job["status"] == "queued" and job["result"] is None
    assert job["engine"] == {"id": engines["slow"], "name": "native-slow"}


def test_a_finished_job_shows_status_timings_usage_and_result(api, engines, pg):
    from jobs.models import Job

    job = finished(api, create(api, engines["fast"], parameters=FIFTY)["id"])
    assert job["status"] == "succeeded" and job["finish_reason"] == "length" and job["error"] is None
    assert job["created_at"] <= job["started_at"] <= job["first_chunk_at"] <= job["finished_at"]
    assert job["usage"]["output_tokens"] == 48
    assert (
        job["result"]["choices"][0]["content"]
        == Job.objects.get(pk=job["id"]).result["choices"][0]["content"]
    )
    assert Job.objects.get(pk=job["id"]).face == "jobs"


def test_engine_may_be_named_model_and_input_given_as_messages_with_a_context(api, engines):
    response = api.post(
        "/v1/jobs",
        json={
            "model": "native-fast",
            "messages": [{"role": "user", "content": "speak of kings"}],
            "context": "You are terse.",
            "parameters": {"max_tokens": 4, "seed": 2, **NO_EOT},
        },
    )
    assert response.status_code == 202, response.text
    job = finished(api, response.json()["id"])
    assert job["engine"]["name"] == "native-fast" and job["usage"]["output_tokens"] == 4


def test_store_and_metadata_are_kept_on_the_job(api, engines, pg):
    from jobs.models import Job

    job = create(api, engines["fast"], store=True, metadata={"team": "blue"}, parameters={"max_tokens": 3})
    assert job["store"] is True and job["metadata"] == {"team": "blue"}
    assert Job.objects.get(pk=job["id"]).options["metadata"] == {"team": "blue"}
    inside = create(api, engines["fast"], parameters={"max_tokens": 3, "store": True, "metadata": {"k": "v"}})
    assert inside["store"] is True and inside["metadata"] == {"k": "v"}


# ---- chunks long-poll ------------------------------------------------------------------------


def test_chunks_returns_those_after_the_given_sequence_number(api, engines):
    job_id = finished(api, create(api, engines["fast"], parameters=FIFTY)["id"])["id"]
    whole = conforms(api.get(f"/v1/jobs/{job_id}/chunks").json(), "ChunkPage")
    assert [c["seq"] for c in whole["chunks"]] == list(range(50))
    assert [c["type"] for c in whole["chunks"][-3:]] == ["content", "usage", "finish"]
    assert whole["done"] is True and whole["last_seq"] == 49 and whole["status"] == "succeeded"

    tail = api.get(f"/v1/jobs/{job_id}/chunks", params={"after": 10}).json()
    assert tail["chunks"] == whole["chunks"][11:] and tail["last_seq"] == 49
    nothing = api.get(f"/v1/jobs/{job_id}/chunks", params={"after": 49, "wait": 1}).json()
    assert nothing["chunks"] == [] and nothing["last_seq"] == 49 and nothing["done"] is True


@pytest.mark.cluster
def test_a_long_poll_loop_with_after_and_wait_collects_the_whole_log_once(api, engines):
    job_id = create(api, engines["slow"], parameters={"max_completion_tokens": 20, "seed": 4, **NO_EOT})["id"]
    seen: list[dict] = []
    after, polls = -1, 0
    while polls < 200:
        polls += 1
        page = conforms(
            api.get(f"/v1/jobs/{job_id}/chunks", params={"after": after, "wait": 5}).json(), "ChunkPage"
        )
        seen += page["chunks"]
        after = page["last_seq"]
        if page["done"]:
            break
    assert page["done"] and page["status"] == "succeeded"
    assert [c["seq"] for c in seen] == list(range(22))
    assert seen == api.get(f"/v1/jobs/{job_id}/chunks").json()["chunks"]


# ---- events (SSE) ----------------------------------------------------------------------------


def test_the_event_stream_sends_every_chunk_with_its_seq_as_id_then_result_and_done(api, engines):
    job_id = create(api, engines["fast"], parameters=FIFTY)["id"]
    frames = events(api, job_id)
    chunks, tail = frames[:50], frames[50:]
    assert [f["id"] for f in chunks] == [str(n) for n in range(50)]
    assert all(f["event"] == "chunk" and f["data"]["seq"] == int(f["id"]) for f in chunks)
    for frame in chunks:
        conforms(frame["data"], "Chunk")
    assert [f["event"] for f in tail] == ["result", "done"] and all("id" not in f for f in tail)
    result = conforms(tail[0]["data"], "Job")
    text = "".join(f["data"]["data"]["content"] for f in chunks if f["data"]["type"] == "content")
    assert result["status"] == "succeeded" and result["result"]["choices"][0]["content"] == text


@pytest.mark.cluster
def test_the_event_stream_of_a_running_job_follows_it_to_the_end(api, engines):
    job_id = create(api, engines["slow"], parameters={"max_completion_tokens": 15, "seed": 8, **NO_EOT})["id"]
    frames = events(api, job_id)
    assert [f.get("id") for f in frames] == [str(n) for n in range(17)] + [None, None]
    assert frames[16]["data"]["type"] == "finish" and frames[-1]["event"] == "done"


@pytest.mark.cluster
@pytest.mark.parametrize("last", [0, 17, 48, 49])
def test_last_event_id_resumes_exactly_after_that_chunk(api, engines, last):
    job_id = create(api, engines["fast"], parameters=FIFTY)["id"]
    whole = events(api, job_id)
    resumed = events(api, job_id, headers={"Last-Event-ID": str(last)})
    assert resumed == whole[last + 1 :]
    assert events(api, job_id, params={"after": last}) == resumed
    # A reconnecting EventSource repeats its original URL: the header wins over ?after.
    assert events(api, job_id, params={"after": 3}, headers={"Last-Event-ID": str(last)}) == resumed


def test_a_silent_stream_sends_keep_alive_comments_until_a_chunk_comes(pg, monkeypatch):
    from asgiref.sync import sync_to_async
    from django.db import connections

    from jobs import chunklog, services
    from jobs.faces.common import sse
    from jobs.faces.native import views
    from jobs.models import Job

    user = services.user_ensure(username="native-keepalive")
    job = Job.objects.create(
        owner=user,
        engine=services.engine_ensure_offline(),
        request={},
        face="jobs",
        status=Job.Status.RUNNING,
    )
    monkeypatch.setattr(sse, "KEEPALIVE_SECONDS", 0.05)
    chunk = {"type": "content", "data": {"content": "hi"}}

    async def first_frames() -> list[str]:
        stream = views._event_stream(await Job.objects.select_related("engine").aget(pk=job.pk), -1)
        try:
            quiet = [await anext(stream), await anext(stream)]
            await asyncio.to_thread(chunklog.append, str(job.pk), [chunk])
            frame = await anext(stream)
            while frame.startswith(":"):
                frame = await anext(stream)
            return [*quiet, frame]
        finally:
            await stream.aclose()
            await sync_to_async(connections.close_all)()  # the ORM's thread, before the loop ends

    try:
        frames = asyncio.run(first_frames())
    finally:
        job.delete()
        redis = chunklog.sync_redis()
        for key in redis.scan_iter(f"{settings.SPOOL.redis.prefix}:job:{{{job.pk}}}:*"):
            redis.delete(key)
    assert frames[:2] == [": keep-alive\n\n"] * 2
    assert frames[2] == 'id: 0\nevent: chunk\ndata: {"seq":0,"type":"content","data":{"content":"hi"}}\n\n'


def test_a_finished_job_is_served_from_postgres_once_its_redis_keys_expire(api, engines):
    from jobs.redis_clients import sync_redis

    job_id = create(api, engines["fast"], parameters=FIFTY)["id"]
    frames, page = events(api, job_id), api.get(f"/v1/jobs/{job_id}/chunks").json()
    redis = sync_redis()
    keys = list(redis.scan_iter(f"{settings.SPOOL.redis.prefix}:job:{{{job_id}}}:*"))
    assert keys, "the live log should be in Redis before it expires"
    redis.delete(*keys)

    assert api.get(f"/v1/jobs/{job_id}/chunks").json() == page
    assert events(api, job_id) == frames
    assert events(api, job_id, headers={"Last-Event-ID": "30"}) == frames[31:]


# ---- cancel ----------------------------------------------------------------------------------


@pytest.mark.cluster
def test_cancel_ends_a_running_job_with_an_error_chunk_and_keeps_its_output(api, engines):
    job_id = create(api, engines["slow"], parameters={"max_completion_tokens": 2000, "seed": 5, **NO_EOT})[
        "id"
    ]
    first = api.get(f"/v1/jobs/{job_id}/chunks", params={"wait": 30}).json()
    assert first["chunks"], "the job should have started"

    response = api.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200, response.text
    job = finished(api, job_id)
    assert job["status"] == "cancelled" and job["error"]["code"] == "cancelled"

    frames = events(api, job_id)
    last_chunk = frames[-3]
    assert last_chunk["event"] == "error" and last_chunk["data"]["data"]["code"] == "cancelled"
    assert [f["event"] for f in frames[-2:]] == ["result", "done"]
    text = "".join(f["data"]["data"].get("content", "") for f in frames if f["event"] == "chunk")
    assert text and job["result"]["choices"][0]["content"] == text
    assert api.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"  # twice is harmless


@pytest.mark.cluster
def test_cancelling_a_queued_job_ends_it_before_it_runs(api, spool, pg):
    from django.contrib.auth import get_user_model

    from jobs import services
    from jobs.models import Job

    # A job no worker has claimed yet, as when every worker thread is busy: made without a task.
    owner = get_user_model().objects.get(username=spool.alice.username)
    job = Job.objects.create(owner=owner, engine=services.engine_ensure_offline(), request={}, face="jobs")
    response = api.post(f"/v1/jobs/{job.pk}/cancel")
    assert response.status_code == 200, response.text
    assert conforms(response.json(), "Job")["status"] == "cancelled"
    frames = events(api, str(job.pk))
    assert [f["event"] for f in frames] == ["error", "result", "done"]
    assert frames[0]["id"] == "0" and frames[0]["data"]["data"]["code"] == "cancelled"


# ---- errors ----------------------------------------------------------------------------------


def test_another_users_job_is_not_found(api, bob_api, engines):
    job_id = create(api, engines["fast"], parameters={"max_tokens": 2})["id"]
    for method, path in [
        ("GET", ""), ("GET", "/chunks"), ("GET", "/events"), ("POST", "/cancel"),
    ]:  # fmt: skip
        assert_error(bob_api.request(method, f"/v1/jobs/{job_id}{path}"), 404, code="job_not_found")
        assert_error(api.request(method, f"/v1/jobs/{uuid.uuid4()}{path}"), 404, code="job_not_found")
        assert_error(api.request(method, f"/v1/jobs/not-a-uuid{path}"), 404, code="job_not_found")
    assert finished(api, job_id)["status"] == "succeeded"


def test_requests_without_a_valid_key_are_refused(spool, engines):
    with _client(spool, "spool-sk-wrong") as wrong:
        assert_error(wrong.post("/v1/jobs", json={"engine": engines["fast"], "command": "x"}), 401,
                     code="invalid_api_key")  # fmt: skip
    response = httpx.get(f"{spool.base_url}/v1/jobs/{uuid.uuid4()}")
    assert_error(response, 401, code="invalid_api_key")


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"parameters": {"temperature": 3}}, "temperature", "decimal_above_max_value"),
        ({"parameters": {"top_k": 3}}, "top_k", "unknown_parameter"),
        ({"parameters": {"stream": True}}, "stream", "unknown_parameter"),
        ({"parameters": []}, "parameters", "invalid_type"),
        ({"colour": "red"}, "colour", "unknown_parameter"),
        ({"engine": None}, "engine", "missing_required_parameter"),
        ({"model": "native-fast"}, "engine", "invalid_parameter_combination"),
        ({"command": None}, "messages", "missing_required_parameter"),
        ({"messages": [{"role": "user", "content": "x"}]}, "messages", "invalid_parameter_combination"),
        ({"command": None, "messages": [{"content": "no role"}]}, "messages", "invalid_value"),
        ({"command": 5}, "command", "invalid_type"),
        ({"store": True, "parameters": {"store": False}}, "store", "invalid_parameter_combination"),
        ({"metadata": {"k": 1}}, "metadata.k", "invalid_type"),
        ({"parameters": {"tools": [{"type": "function", "function": {"name": "f"}}]}}, "tools",
         "unsupported_parameter"),
    ],
)  # fmt: skip
def test_invalid_input_is_a_400_naming_the_parameter(api, engines, body, param, code):
    payload = {"engine": engines["fast"], "command": "hello", **body}
    payload = {name: value for name, value in payload.items() if value is not None}
    assert_error(api.post("/v1/jobs", json=payload), 400, code=code, param=param)


def test_an_unknown_engine_is_a_404_naming_it(api):
    assert_error(api.post("/v1/jobs", json={"engine": "no-such-engine", "command": "x"}), 404,
                 code="engine_not_found", param="engine")  # fmt: skip


def test_bad_bodies_and_query_values_are_400s(api, engines):
    assert_error(api.post("/v1/jobs", content=b"{not json"), 400, code="invalid_json")
    assert_error(api.post("/v1/jobs", json=["a list"]), 400, code="invalid_json")
    job_id = create(api, engines["fast"], parameters={"max_tokens": 2})["id"]
    assert_error(
        api.get(f"/v1/jobs/{job_id}/chunks", params={"after": -2}), 400, code="invalid_value", param="after"
    )
    assert_error(
        api.get(f"/v1/jobs/{job_id}/chunks", params={"wait": 99}), 400, code="invalid_value", param="wait"
    )
    assert_error(
        api.get(f"/v1/jobs/{job_id}", params={"wait": "soon"}), 400, code="invalid_value", param="wait"
    )
    response = api.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "x"})
    assert_error(response, 400, code="invalid_value", param="Last-Event-ID")


def test_a_wrong_method_is_a_405_in_the_envelope(api):
    response = api.delete("/v1/jobs")
    assert_error(response, 405, code="method_not_allowed")
    assert response.headers["Allow"] == "GET, POST, HEAD"


# ---- OpenAPI ---------------------------------------------------------------------------------


def test_every_route_and_method_is_in_the_openapi_document(spool):
    from jobs.faces.native import urls

    spec = httpx.get(f"{spool.base_url}/v1/jobs/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    routes = {}
    for pattern in urls.urlpatterns:
        if str(pattern.pattern).endswith("openapi.json"):
            continue  # the document itself
        path = "/v1/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))
        routes[path] = {m.lower() for m in pattern.callback.view_class().allowed_methods if m != "OPTIONS"}
    assert routes == {path: set(operations) for path, operations in spec["paths"].items()}
