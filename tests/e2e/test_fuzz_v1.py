"""Schemathesis over every operation of the generated documents (GET /v1/openapi.json and
/Monolith/api/openapi.json): no 5xx, no answer off the document."""

from __future__ import annotations

import base64
import json
import re

import httpx
import pytest
import schemathesis
import schemathesis.engine
from django.urls import URLPattern, URLResolver, get_resolver
from schemathesis.engine import events

pytestmark = pytest.mark.e2e

CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance")  # fmt: skip
EXAMPLES_PER_OPERATION = 30
METHODS = ("get", "post", "put", "patch", "delete")
DOCS = ("openapi.json", "/docs")


@pytest.fixture(autouse=True)
def no_webhook_endpoints_left(django_db_blocker):
    """The fuzzer registers webhook endpoints for alice on the session's Spool: they are disabled
    when the test ends, or every later job of hers in the run would queue deliveries to them.
    Disabled rather than deleted: that Spool's worker may be recording an attempt meanwhile.
    Only those made during the test: another module's endpoints are its own to clean up."""
    from django.utils import timezone

    from jobs.webhooks.models import WebhookEndpoint

    started = timezone.now()
    yield
    with django_db_blocker.unblock():
        WebhookEndpoint.objects.filter(created_at__gte=started).update(
            enabled=False, disabled_reason="The fuzz test is over."
        )


def _config(spool, authorization: str, operations: list[dict] | None = None) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "operations": operations or [],
            "base-url": spool.base_url,
            "headers": {"Authorization": authorization},
            "seed": 1,
            # One: with two threads, CPython 3.11's ast module (which hypothesis uses) can fail with
            # "AST constructor recursion depth mismatch" (gh-106905).
            "workers": 1,
            "request-timeout": 30,  # an answer that never comes is a failure, not a hang
            "generation": {"mode": "all", "max-examples": EXAMPLES_PER_OPERATION},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        }
    )


def _failure(label: str, check) -> str:
    failure = check.failure_info.failure
    return f"{label}: {check.name}: {failure.title}\n{failure.message}\n{check.failure_info.code_sample}"


def _basic(spool) -> str:
    return "Basic " + base64.b64encode(f"{spool.alice.access_key}:{spool.alice.secret_key}".encode()).decode()


def _delete_one_real_response(spool, authorization: str) -> dict:
    """The stateful phase follows create's links to delete only by chance among the whole of /v1
    (over /v1/responses alone it does): the delete operation gets one stored response of its own,
    so its success answer is checked every run."""
    created = httpx.post(
        f"{spool.base_url}/v1/responses",
        headers={"Authorization": authorization},
        json={"model": "spool-offline", "input": "Hello", "max_output_tokens": 4},
        timeout=60,
    )
    assert created.status_code == 200, created.text
    response_id = created.json()["id"]
    return {"include-operation-id": "deleteResponse", "parameters": {"path.response_id": response_id}}


def _batch_one_real_file(spool, authorization: str) -> dict:
    """createBatch succeeds only on a file of the caller's, which the generated bodies reach
    through create's link by chance: the operation gets one uploaded file of its own."""
    line = json.dumps(
        {
            "custom_id": "a",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "spool-offline"},
        }
    ).encode()
    uploaded = httpx.post(
        f"{spool.base_url}/v1/files",
        headers={"Authorization": authorization},
        files={"file": ("fuzz.jsonl", line)},
        data={"purpose": "batch"},
        timeout=60,
    )
    assert uploaded.status_code == 200, uploaded.text
    return {
        "include-operation-id": "createBatch",
        "parameters": {"body.input_file_id": uploaded.json()["id"]},
    }


@pytest.mark.parametrize("face", ["v1", "semoss"])
def test_every_operation_answers_valid_and_invalid_input_as_documented_and_never_with_a_5xx(spool, face):
    operations = []
    if face == "v1":
        url, authorization = f"{spool.base_url}/v1/openapi.json", f"Bearer {spool.alice.secret_key}"
        operations = [
            _delete_one_real_response(spool, authorization),
            _batch_one_real_file(spool, authorization),
        ]
    else:
        url, authorization = f"{spool.base_url}/Monolith/api/openapi.json", _basic(spool)
    schema = schemathesis.openapi.from_url(url, config=_config(spool, authorization, operations))
    document = httpx.get(url).json()
    documented = {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item}
    cases: dict[str, int] = {}
    answered: set[tuple[str, int]] = set()
    failures, errors = [], []
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            for case_id, node in recorder.cases.items():
                label = node.value.operation.label
                cases[label] = cases.get(label, 0) + 1
                interaction = recorder.interactions.get(case_id)
                if interaction is not None and interaction.response is not None:
                    answered.add((label, interaction.response.status_code))
                for check in recorder.checks.get(case_id, []):
                    if check.failure_info is not None:
                        failures.append(_failure(recorder.label, check))
        elif isinstance(event, events.NonFatalError | events.FatalError):
            info = getattr(event, "info", None)
            errors.append(f"{getattr(event, 'label', '')}: {info.traceback if info else event.exception!r}")
    print(f"schemathesis: {len(cases)} operations, {sum(cases.values())} cases: {cases}")
    assert not errors, "\n".join(errors)
    assert not failures, f"{len(failures)} failures:\n\n" + "\n\n".join(dict.fromkeys(failures))
    assert set(cases) == documented
    # Success answers of every operation were checked too (examples and stateful links reach
    # real jobs and stored completions), not only errors.
    succeeded = {label for label, status in answered if status < 300}
    if face == "v1" and "POST /v1/batches" not in succeeded:
        # Its generated bodies reach the one uploaded file only when no other generated call
        # deleted it first, which the run's order decides: its success is checked directly.
        batch = _create_a_batch(spool, authorization)
        assert batch.status_code == 200, batch.text
        succeeded.add("POST /v1/batches")
    assert succeeded == documented, sorted(answered)


def _create_a_batch(spool, authorization: str) -> httpx.Response:
    file_id = _batch_one_real_file(spool, authorization)["parameters"]["body.input_file_id"]
    body = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    return httpx.post(
        f"{spool.base_url}/v1/batches", headers={"Authorization": authorization}, json=body, timeout=60
    )


# ---- the document covers the URLconfs --------------------------------------------------------


def _v1_routes(patterns: list, prefix: str = "/") -> list[str]:
    """Every API route under /v1 in the project's URLconfs, in OpenAPI's {name} form (not the
    documents and their pages)."""
    routes = []
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            routes += _v1_routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern) and route.startswith("/v1/") and not route.endswith(DOCS):
            routes.append(re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route))
    return routes


def _methods_served(spool, route: str) -> set[str]:
    """The methods the running server does not answer with 405 (ids filled with a fresh name)."""
    url = spool.base_url + re.sub(r"\{\w+\}", "no-such-id", route)
    headers = {"Authorization": f"Bearer {spool.alice.secret_key}"}
    return {m for m in METHODS if httpx.request(m, url, headers=headers, timeout=30).status_code != 405}


def test_every_v1_route_is_in_the_document_with_exactly_the_methods_it_serves(spool):
    document = httpx.get(f"{spool.base_url}/v1/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    routes = _v1_routes(get_resolver().url_patterns)
    assert len(routes) >= 11, routes  # the documents and their pages left out
    served = {route: _methods_served(spool, route) for route in routes}
    documented = {
        path: {name for name in item if name in METHODS} for path, item in document["paths"].items()
    }
    assert served == documented


def test_the_documents_are_generated_and_served_without_a_key(spool):
    v1 = httpx.get(f"{spool.base_url}/v1/openapi.json")
    assert v1.status_code == 200 and v1.headers["content-type"] == "application/json"
    document = v1.json()
    native = httpx.get(f"{spool.base_url}/v1/jobs/openapi.json").json()
    assert native["paths"] == {
        path: item for path, item in document["paths"].items() if path.startswith("/v1/jobs")
    }
    schemes = document["components"]["securitySchemes"]
    assert schemes.keys() == {"bearer", "basic", "readToken"}
    assert (schemes["readToken"]["in"], schemes["readToken"]["name"]) == ("query", "token")
    # Only the reads of one job take a read token.
    assert sorted(
        (path, method)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if {"readToken": []} in operation.get("security", [])
    ) == [
        ("/v1/jobs/{job_id}", "get"),
        ("/v1/jobs/{job_id}/chunks", "get"),
        ("/v1/jobs/{job_id}/events", "get"),
    ]
    semoss = httpx.get(f"{spool.base_url}/Monolith/api/openapi.json").json()
    assert {"/Monolith/api/engine/runPixelAsync", "/Monolith/api/engine/pixelJobStreaming"} <= semoss[
        "paths"
    ].keys()


def test_the_docs_pages_load_their_files_offline(spool):
    for page in ("/v1/docs", "/Monolith/api/docs"):
        html = httpx.get(spool.base_url + page)
        assert html.status_code == 200 and "swagger-ui" in html.text
        for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html.text):
            assert httpx.get(spool.base_url + asset).status_code == 200, asset
