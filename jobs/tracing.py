"""OpenTelemetry tracing: one trace per job, from the request that created it through the broker,
the worker's claim, the upstream call and the end of the job, with every later read of the job
linked to it.

Off unless the standard OTEL_* variables ask for it (an OTLP endpoint, or OTEL_TRACES_EXPORTER
other than "none"; OTEL_SDK_DISABLED=true wins). Off, nothing of OpenTelemetry is imported and
every function here returns at once, so a request or a job pays one attribute read.

On, the maintained instrumentations do the crossing: Django (each request's span, W3C context
from the client), Celery (the context travels in the task message's headers, so the worker's
span is a child of the request's publish), redis, psycopg and the aiohttp client (which sends
`traceparent` upstream). Spool adds what only it knows: how long the job waited in the queue,
the time to its first chunk, its final commit, and a link from each read back to the job.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

TRACER_NAME = "spool"
# Where a job keeps the W3C trace context of the request that created it (Job.options and the
# live meta), so a worker, a sweeper or a reader can name the job's trace.
TRACEPARENT = "traceparent"

_enabled = False


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the OTEL_* variables ask for traces to be exported."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    return any(environ.get(name) for name in endpoints)


def setup(service_name: str) -> bool:
    """Install the tracer provider and the instrumentations, once per process, when wanted.
    service_name is the default of OTEL_SERVICE_NAME ("spool-web", "spool-worker")."""
    global _enabled
    if _enabled or not wanted():
        return _enabled
    from opentelemetry import trace
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    resource = Resource.create({"service.name": service_name}).merge(OTELResourceDetector().detect())
    if os.environ.get("OTEL_SERVICE_NAME"):
        resource = resource.merge(Resource.create({"service.name": os.environ["OTEL_SERVICE_NAME"]}))
    provider = TracerProvider(resource=resource)
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if exporter_name == "console":
        exporter: Any = ConsoleSpanExporter()
    elif exporter_name == "otlp":
        # HTTP/protobuf, configured by OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, _TIMEOUT...
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    else:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            f"OTEL_TRACES_EXPORTER={exporter_name!r}: Spool exports traces with 'otlp' (HTTP/protobuf) "
            "or 'console', or not at all with 'none'."
        )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    DjangoInstrumentor().instrument()
    CeleryInstrumentor().instrument()
    RedisInstrumentor().instrument()
    PsycopgInstrumentor().instrument(enable_commenter=False)
    AioHttpClientInstrumentor().instrument()
    _enabled = True
    return True


def enabled() -> bool:
    """Whether this process exports traces (setup found them asked for)."""
    return _enabled


def flush() -> None:
    """Export what is buffered (a worker that is shutting down)."""
    if _enabled:
        from opentelemetry import trace

        provider: Any = trace.get_tracer_provider()
        provider.force_flush()


def current_traceparent() -> str | None:
    """The W3C traceparent of the span in progress, to be kept with a job created in it."""
    if not _enabled:
        return None
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get(TRACEPARENT)


def _job_context(traceparent: str | None) -> Any:
    from opentelemetry.propagate import extract

    return extract({TRACEPARENT: traceparent}) if traceparent else None


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


def record_span(name: str, start: datetime, end: datetime, **attributes: Any) -> None:
    """A span of something already over (the queue wait, the time to the first chunk), as a
    child of the span in progress."""
    if not _enabled:
        return
    from opentelemetry import trace

    span = trace.get_tracer(TRACER_NAME).start_span(name, start_time=_ns(start), attributes=attributes)
    span.end(end_time=_ns(end))


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[None]:
    """A span of Spool's own around a block, as a child of the span in progress."""
    if not _enabled:
        yield
        return
    from opentelemetry import trace

    with trace.get_tracer(TRACER_NAME).start_as_current_span(name, attributes=attributes):
        yield


def link_read(job_id: str, traceparent: str | None) -> None:
    """Marks the request in progress as a read of the job and links its span to the job's trace:
    a poll or a stream is a trace of its own (it may come hours later, from another client),
    found from the job's trace through the link and the job id."""
    if not _enabled:
        return
    from opentelemetry import trace

    current = trace.get_current_span()
    if getattr(current, "attributes", {}).get("spool.job_id") == job_id:
        return  # a stream looks its job up again on each idle turn: one link is enough
    current.set_attribute("spool.job_id", job_id)
    job_context = _job_context(traceparent)
    if job_context is not None:
        current.add_link(trace.get_current_span(job_context).get_span_context(), {"spool.link": "job"})
