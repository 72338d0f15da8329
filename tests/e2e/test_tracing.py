"""One trace per job, across the web process, the broker, the worker and the upstream, exported
over OTLP/HTTP to a collector (a receiver in this test that decodes what the real exporter
sends), with a later read of the job linked to that trace."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

import fakeupstream
from jobs import tracing
from tests.e2e.openai_helpers import client, upstream_engine
from tests.servers import running_spool

# Bounds the wait for the exporters' batches; not a measurement.
EXPORT_BOUND_SECONDS = 30


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict
    linked_traces: tuple[str, ...]


class Collector:
    """An OTLP/HTTP trace receiver on loopback: POST /v1/traces with a protobuf body."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()
        collector = self

        class Receive(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802  (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.add(ExportTraceServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Receive)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def add(self, request: ExportTraceServiceRequest) -> None:
        found = []
        for resource_spans in request.resource_spans:
            service = next(
                (a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"),
                "",
            )
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {a.key: _value(a.value) for a in span.attributes}
                    found.append(
                        Span(
                            service,
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            attributes,
                            tuple(link.trace_id.hex() for link in span.links),
                        )
                    )
        with self._lock:
            self.spans.extend(found)

    def wait_for(self, what: str, predicate) -> list[Span]:
        deadline = time.monotonic() + EXPORT_BOUND_SECONDS
        while time.monotonic() < deadline:
            with self._lock:
                matching = [s for s in self.spans if predicate(s)]
            if matching:
                return matching
            time.sleep(0.1)
        raise AssertionError(f"no span {what} within {EXPORT_BOUND_SECONDS} s: {self.spans}")

    def close(self) -> None:
        self.server.shutdown()


def _value(value) -> object:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@pytest.fixture(scope="module")
def traced(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[tuple]:
    collector = Collector()
    env = {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # export within moments, not the default 5 s
    }
    with (
        fakeupstream.running(port=0) as upstream,
        running_spool(django_db_blocker, tmp_path_factory.mktemp("traced"), **env) as spool,
    ):
        with django_db_blocker.unblock():
            model = upstream_engine(f"traced-{uuid.uuid4().hex[:8]}", upstream, "fake?tokens=5")
        yield spool, collector, upstream, model
    collector.close()


def test_a_job_is_one_trace_from_the_request_through_the_worker_to_the_upstream(traced):
    spool, collector, upstream, model = traced
    with client(spool) as openai:
        answer = openai.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "Trace me."}]
        )
    job_id = answer.headers["x-spool-job-id"]

    [queue_wait] = collector.wait_for(
        "spool.queue_wait of the job",
        lambda s: s.name == "spool.queue_wait" and s.attributes.get("spool.job_id") == job_id,
    )
    trace_id = queue_wait.trace_id

    def in_trace(s: Span) -> bool:
        return s.trace_id == trace_id

    # Each process exports on its own schedule: wait for every span looked at below.
    [request] = collector.wait_for(
        "of the request", lambda s: in_trace(s) and s.service == "spool-web" and not s.parent_id
    )
    collector.wait_for(
        "of the publish", lambda s: in_trace(s) and s.service == "spool-web" and "spool.run_job" in s.name
    )
    # The task's span ends after its children (the commit among them), so it is exported last.
    collector.wait_for(
        "of the task", lambda s: in_trace(s) and s.service == "spool-worker" and "spool.run_job" in s.name
    )
    collector.wait_for("spool.commit", lambda s: in_trace(s) and s.name == "spool.commit")
    [upstream_call] = collector.wait_for(
        "of the upstream call", lambda s: in_trace(s) and s.service == "spool-worker" and "POST" in s.name
    )
    spans = {s.span_id: s for s in collector.spans if in_trace(s)}
    by_name = {s.name: s for s in spans.values()}

    # The request's span on the web, its publish to the broker, and the worker's task under it.
    assert "chat/completions" in request.name or request.attributes.get("http.route", "").endswith(
        "chat/completions"
    )
    [run] = [s for s in spans.values() if s.service == "spool-worker" and "spool.run_job" in s.name]
    publish = spans[run.parent_id]
    assert publish.service == "spool-web"
    assert "spool.run_job" in publish.name

    # Spool's own spans, each in the worker's task.
    for name in ("spool.queue_wait", "spool.generation", "spool.first_chunk", "spool.commit"):
        assert spans[by_name[name].parent_id] is run, name
    assert by_name["spool.queue_wait"].attributes["spool.job_id"] == job_id

    # The upstream call: a child of the generation, and the upstream got its traceparent.
    assert spans[upstream_call.parent_id] is by_name["spool.generation"]
    [sent] = [r for r in fakeupstream.recorded(upstream) if r["path"].endswith("/chat/completions")][-1:]
    assert sent["headers"]["traceparent"].split("-")[1:3] == [trace_id, upstream_call.span_id]


def test_a_read_of_the_job_is_linked_to_the_jobs_trace(traced):
    spool, collector, _, model = traced
    with client(spool) as openai:
        answer = openai.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "Trace my reads."}], store=True
        )
    job_id = answer.headers["x-spool-job-id"]
    [commit] = collector.wait_for(
        "spool.commit of the job",
        lambda s: s.name == "spool.queue_wait" and s.attributes.get("spool.job_id") == job_id,
    )
    job_trace = commit.trace_id

    read = httpx.get(
        f"{spool.base_url}/v1/jobs/{job_id}",
        headers={"Authorization": f"Bearer {spool.alice.secret_key}"},
        timeout=30,
    )
    assert read.status_code == 200
    [read_span] = collector.wait_for(
        "of the read", lambda s: s.service == "spool-web" and s.attributes.get("spool.job_id") == job_id
    )
    assert read_span.trace_id != job_trace  # a read is a trace of its own...
    assert read_span.linked_traces == (job_trace,)  # ...linked to the job's


def test_tracing_is_off_unless_the_otel_variables_ask_for_it():
    assert not tracing.wanted({})
    assert not tracing.wanted({"OTEL_SERVICE_NAME": "spool"})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "console"})
    assert not tracing.wanted(
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}
    )
    assert not tracing.wanted({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
