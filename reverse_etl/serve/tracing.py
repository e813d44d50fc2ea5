"""OpenTelemetry traces of runs and their stages, only when the user configures an exporter.

One span per sync run (``reverse_etl.run``) with a child span per stage
(``reverse_etl.stage``: source, diff, deliver, commit), their attributes the sync,
run id, counts and outcome. The SDK is an optional extra (``serve``), imported
only here and only when tracing is on: ``--traces otlp`` (endpoint from the
standard ``OTEL_EXPORTER_OTLP_*`` variables) or ``--traces console``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from reverse_etl.errors import UsageError
from reverse_etl.run.events import Hook, RunEvent, RunFinished, RunStarted, StageFinished


def tracer_provider(exporter: str) -> Any:
    """A TracerProvider exporting to ``otlp`` or ``console``; UsageError naming the fix otherwise."""
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        raise UsageError("--traces needs the OpenTelemetry SDK: pip install 'reverse_etl[serve]'") from None
    provider = TracerProvider(resource=Resource.create({"service.name": "reverse-etl"}))
    if exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    elif exporter == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise UsageError("--traces otlp needs opentelemetry-exporter-otlp-proto-http: "
                             "pip install opentelemetry-exporter-otlp-proto-http") from None
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        raise UsageError(f"--traces {exporter!r}: choose otlp or console")
    return provider


def tracing_hook(provider: Any) -> Hook:
    """A run hook that records each run as a span and each stage as a child span."""
    tracer = provider.get_tracer("reverse_etl")
    spans: dict[str, Any] = {}
    lock = threading.Lock()

    def on_event(event: RunEvent) -> None:
        from opentelemetry import trace

        if isinstance(event, RunStarted):
            if event.dry_run:
                return
            span = tracer.start_span("reverse_etl.run", attributes={
                "reverse_etl.sync": event.sync, "reverse_etl.run_id": event.run_id})
            with lock:
                spans[event.run_id] = span
        elif isinstance(event, StageFinished):
            with lock:
                parent = spans.get(event.run_id)
            if parent is None:
                return
            end = time.time_ns()
            child = tracer.start_span(
                "reverse_etl.stage", context=trace.set_span_in_context(parent),
                start_time=end - int(event.seconds * 1e9),
                attributes={"reverse_etl.sync": event.sync, "reverse_etl.run_id": event.run_id,
                            "reverse_etl.stage": event.stage})
            child.end(end_time=end)
        elif isinstance(event, RunFinished):
            result = event.result
            with lock:
                span = spans.pop(result.run_id, None)
            if span is None:
                return
            span.set_attribute("reverse_etl.outcome", result.outcome)
            for kind, n in result.counts.items():
                span.set_attribute(f"reverse_etl.rows.{kind}", int(n))
            span.set_attribute("reverse_etl.requests", result.requests)
            if result.outcome not in ("success", "skipped"):
                span.set_status(trace.Status(trace.StatusCode.ERROR, result.message or result.outcome))
            span.end()

    return on_event
